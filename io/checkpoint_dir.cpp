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

bool CheckpointDir::parse_part(const std::string& filename, int64_t& step, int64_t& rank) {
  size_t dot = filename.find(".part");
  if (dot == std::string::npos || step_of(filename.substr(0, dot) + ".h5") < 0) return false;
  const std::string suffix = ".h5";
  const char* first = filename.data() + dot + 5;
  const char* last = filename.data() + filename.size() - suffix.size();
  if (filename.size() < dot + 5 + suffix.size() + 1 ||
      filename.compare(filename.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  auto [end, ec] = std::from_chars(first, last, rank);
  step = step_of(filename.substr(0, dot) + ".h5");
  return ec == std::errc() && end == last && rank >= 1;
}

namespace {

/// Writes `ckpt` to `path` + ".tmp" and fsyncs it; a failed write leaves nothing behind.
void write_durably(const std::string& tmp, const Checkpoint& ckpt) {
  std::error_code ec;
  try {
    write_checkpoint(tmp, ckpt);
    fsync_path(tmp, false);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec, "[checkpoint] cannot create checkpoint.dir ", dir, ": ", ec.message());
}

}  // namespace

std::string CheckpointDir::save(const Checkpoint& ckpt) const {
  prepare(ckpt);
  return commit(ckpt.step);
}

std::string CheckpointDir::prepare(const Checkpoint& ckpt) const {
  check(ckpt.part_rank == 0, "[checkpoint] prepare() writes main files; rank ", ckpt.part_rank,
        "'s part goes through write_part()");
  make_dir(dir_);
  remove_leftovers(ckpt.step);
  std::string tmp = (fs::path(dir_) / ("ckpt-" + std::to_string(ckpt.step) + ".h5.tmp")).string();
  write_durably(tmp, ckpt);
  return tmp;
}

std::string CheckpointDir::commit(int64_t step) const {
  std::string name = "ckpt-" + std::to_string(step) + ".h5";
  std::string final_path = (fs::path(dir_) / name).string();
  rename_durably(final_path + ".tmp", final_path, dir_);

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

std::string CheckpointDir::write_part(const Checkpoint& ckpt) const {
  check(ckpt.part_rank > 0, "[checkpoint] write_part() writes the parts of ranks > 0");
  make_dir(dir_);
  std::string path = (fs::path(dir_) / part_file_name(ckpt.step, ckpt.part_rank)).string();
  write_durably(path + ".tmp", ckpt);
  rename_durably(path + ".tmp", path, dir_);
  return path;
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

void CheckpointDir::remove_leftovers(int64_t step) const {
  // Only this run writes here, so a temporary is left over from a killed writer, and a part
  // that no main file lists from a save that never committed. The current step's parts and
  // their temporaries are spared: other ranks may be writing them right now.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
    std::string base = tmp ? name.substr(0, name.size() - 4) : name;
    int64_t part_step = -1, rank = 0;
    bool part = parse_part(base, part_step, rank);
    bool remove = (tmp && step_of(base) >= 0) || name == std::string(kLatest) + ".tmp";
    if (part && part_step != step) {
      remove = tmp || !fs::exists(fs::path(dir_) / ("ckpt-" + std::to_string(part_step) + ".h5"));
    }
    if (remove) fs::remove(entry.path(), ec);
  }
}

void CheckpointDir::prune() const {
  std::vector<std::string> all = files();
  std::string keep_always = latest();
  std::error_code ec;
  std::vector<int64_t> dropped;
  for (size_t i = static_cast<size_t>(keep_); i < all.size(); ++i) {
    if (all[i] == keep_always) continue;
    fs::remove(all[i], ec);
    dropped.push_back(step_of(fs::path(all[i]).filename().string()));
  }
  if (dropped.empty()) return;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    int64_t part_step = -1, rank = 0;
    if (parse_part(entry.path().filename().string(), part_step, rank) &&
        std::find(dropped.begin(), dropped.end(), part_step) != dropped.end()) {
      fs::remove(entry.path(), ec);
    }
  }
}

}  // namespace strata::io
