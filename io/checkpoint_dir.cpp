// Atomic checkpoint commits. A reader sees either the previous state or the new one: a file
// gets its final name only after its bytes are on disk, and `latest` moves last.
#include "io/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLatest = "latest";

std::string errno_text() { return std::strerror(errno); }

/// fsync of a file or a folder (a folder's fsync makes the renames in it durable).
void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  check(fd >= 0, "[checkpoint] cannot open ", path, " to fsync it: ", errno_text());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  check(rc == 0, "[checkpoint] fsync of ", path, " failed: ", std::strerror(err),
        "; is the disk full or failing?");
}

void rename_durably(const std::string& from, const std::string& to, const std::string& dir) {
  check(std::rename(from.c_str(), to.c_str()) == 0, "[checkpoint] cannot rename ", from, " to ", to,
        ": ", errno_text());
  fsync_path(dir, true);
}

}  // namespace

CheckpointDir::CheckpointDir(std::string dir, int64_t keep) : dir_(std::move(dir)), keep_(keep) {
  check(!dir_.empty(), "[checkpoint] checkpoint.dir is empty");
  check(keep_ >= 1, "[checkpoint] checkpoint.keep must be at least 1, got ", keep_);
}

int64_t CheckpointDir::step_of(const std::string& filename) {
  const std::string prefix = "ckpt-", suffix = ".h5";
  if (filename.size() <= prefix.size() + suffix.size() || filename.rfind(prefix, 0) != 0 ||
      filename.compare(filename.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return -1;
  }
  const char* first = filename.data() + prefix.size();
  const char* last = filename.data() + filename.size() - suffix.size();
  int64_t step = -1;
  auto [end, ec] = std::from_chars(first, last, step);
  return ec == std::errc() && end == last && step >= 0 ? step : -1;
}

std::string CheckpointDir::save(const Checkpoint& ckpt) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  check(!ec, "[checkpoint] cannot create checkpoint.dir ", dir_, ": ", ec.message());
  remove_temporaries();
  std::string name = "ckpt-" + std::to_string(ckpt.step) + ".h5";
  std::string final_path = (fs::path(dir_) / name).string();
  std::string tmp = final_path + ".tmp";
  try {
    write_checkpoint(tmp, ckpt);
    fsync_path(tmp, false);
  } catch (...) {
    fs::remove(tmp, ec);  // a failed write leaves nothing behind
    throw;
  }
  rename_durably(tmp, final_path, dir_);

  std::string pointer = (fs::path(dir_) / kLatest).string();
  {
    std::ofstream out(pointer + ".tmp", std::ios::trunc);
    out << name << '\n';
    out.flush();
    check(out.good(), "[checkpoint] cannot write ", pointer, ".tmp; is the disk full?");
  }
  fsync_path(pointer + ".tmp", false);
  rename_durably(pointer + ".tmp", pointer, dir_);
  prune();
  return final_path;
}

std::vector<std::string> CheckpointDir::files() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return {};
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && entry.is_regular_file(ec)) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::string CheckpointDir::latest() const {
  std::ifstream in(fs::path(dir_) / kLatest);
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) return "";
  return (fs::path(dir_) / name).string();
}

std::optional<CheckpointDir::Found> CheckpointDir::newest_valid(
    std::vector<std::string>* errors) const {
  std::vector<std::string> skipped;
  for (const std::string& path : files()) {
    try {
      Found found{path, read_checkpoint(path), skipped};
      return found;
    } catch (const Error& e) {
      skipped.push_back(e.what());
    }
  }
  if (errors) *errors = skipped;
  return std::nullopt;
}

void CheckpointDir::remove_temporaries() const {
  // Only this run writes here, so any temporary is left over from a killed writer.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    bool ckpt_tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0 &&
                    step_of(name.substr(0, name.size() - 4)) >= 0;
    if (ckpt_tmp || name == std::string(kLatest) + ".tmp") fs::remove(entry.path(), ec);
  }
}

void CheckpointDir::prune() const {
  std::vector<std::string> all = files();
  std::string keep_always = latest();
  std::error_code ec;
  for (size_t i = static_cast<size_t>(keep_); i < all.size(); ++i) {
    if (all[i] != keep_always) fs::remove(all[i], ec);
  }
}

}  // namespace strata::io
