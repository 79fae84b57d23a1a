// The ckpt subcommands. Verification is read_checkpoint itself (the main file and its parts),
// so `verify` and a resume accept exactly the same checkpoints.
#include "launch/ckpt_command.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/checkpoint_dir.h"
#include "io/hdf5.h"

namespace strata::launch {
namespace {

namespace fs = std::filesystem;

std::string human_bytes(int64_t n) {
  char buf[32];
  if (n >= 1000000) {
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / 1e6);
  } else if (n >= 1000) {
    std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(n) / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  }
  return buf;
}

/// The files a path stands for: itself, or a folder's committed checkpoints (newest first).
std::vector<std::string> expand(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> files = io::CheckpointDir(path, 1).files();
  check(!files.empty(), "[ckpt] no checkpoint (ckpt-<step>.h5) in folder ", path);
  return files;
}

Tensor exportable(const Tensor& t) {
  return t.dtype() == DType::bf16 || t.dtype() == DType::f16 ? t.to(DType::f32) : t;
}

}  // namespace

int ckpt_inspect(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    io::CheckpointDir dir(path, 1);
    std::printf("folder %s: latest -> %s\n", path.c_str(),
                dir.latest().empty() ? "(none)" : dir.latest().c_str());
    for (const auto& f : dir.files()) std::printf("  %s\n", f.c_str());
    file = expand(path).front();
  }
  io::CheckpointInfo info = io::inspect_checkpoint(file);
  std::printf("%s: strata checkpoint version %lld, step %lld, epoch %lld\nlayout: %s\n",
              file.c_str(), static_cast<long long>(info.version), static_cast<long long>(info.step),
              static_cast<long long>(info.epoch), info.layout.dump().c_str());
  for (const auto& p : info.parts) {
    std::printf("part: %s (rank %lld's state; its datasets are listed as parts/rank%lld/...)\n",
                p.file.c_str(), static_cast<long long>(p.rank), static_cast<long long>(p.rank));
  }
  int64_t total = 0;
  for (const auto& e : info.entries) {
    std::printf("  %-48s %-5s %-18s %s\n", e.name.c_str(), std::string(dtype_name(e.dtype)).c_str(),
                shape_str(e.shape).c_str(), human_bytes(e.bytes).c_str());
    total += e.bytes;
  }
  std::printf("%zu datasets, %s of data\nconfig: %s\n", info.entries.size(),
              human_bytes(total).c_str(), info.config.dump().c_str());
  return 0;
}

int ckpt_verify(const std::vector<std::string>& paths) {
  int bad = 0;
  for (const auto& arg : paths) {
    for (const auto& file : expand(arg)) {
      try {
        io::Checkpoint c = io::read_checkpoint(file);
        size_t n = c.model.size() + c.optimizer.size() + c.rng.size() + c.samplers.size() +
                   c.extra.size() + 1;
        for (const auto& r : c.other_ranks) n += r.rng.size() + r.samplers.size();
        std::printf("ok      %s (step %lld, %zu tensors from %zu file(s), checksums verified)\n",
                    file.c_str(), static_cast<long long>(c.step), n, c.parts.size() + 1);
      } catch (const Error& e) {
        std::printf("FAILED  %s\n        %s\n", file.c_str(), e.what());
        ++bad;
      }
    }
  }
  std::fflush(stdout);
  return bad == 0 ? 0 : 1;
}

int ckpt_export(const std::string& path, const std::string& out, bool all) {
  io::Checkpoint c = io::read_checkpoint(expand(path).front());
  std::string tmp = out + ".tmp";
  {
    io::H5File file(tmp, io::H5File::Mode::create);
    for (const auto& [name, t] : c.model) file.write_tensor(name, exportable(t));
    if (all) {
      for (const auto& [name, t] : c.optimizer)
        file.write_tensor("optimizer/" + name, exportable(t));
      std::vector<io::RankStreams> ranks{{c.rng, c.samplers}};
      ranks.insert(ranks.end(), c.other_ranks.begin(), c.other_ranks.end());
      for (size_t r = 0; r < ranks.size(); ++r) {
        std::string sub = r == 0 ? "" : str_cat("rank", r, "/");
        for (const auto& [name, s] : ranks[r].rng) {
          file.write_tensor(
              "rng/" + sub + name,
              from_vector<int64_t>({static_cast<int64_t>(s.seed), static_cast<int64_t>(s.offset)},
                                   {2}));
        }
        for (const auto& [name, s] : ranks[r].samplers) {
          file.write_tensor("sampler/" + sub + name,
                            from_vector<int64_t>({s.epoch, s.cursor}, {2}));
        }
      }
      for (const auto& [name, t] : c.extra) file.write_tensor("extra/" + name, exportable(t));
    }
    file.write_attribute("step", std::to_string(c.step));
    file.write_attribute("source", path);
  }
  fs::rename(tmp, out);
  std::printf("exported %zu model tensors%s of step %lld to %s\n", c.model.size(),
              all ? " and all training state" : "", static_cast<long long>(c.step), out.c_str());
  return 0;
}

}  // namespace strata::launch
