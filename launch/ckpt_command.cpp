// The ckpt subcommands. Verification is read_checkpoint itself (the main file and its parts),
// so `verify` and a resume accept exactly the same checkpoints.
#include "launch/ckpt_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

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

/// Whether two tensors hold the same dtype, shape and bytes; else the difference in words.
std::string tensor_difference(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return a.desc() + " vs " + b.desc();
  Tensor x = a.contiguous(), y = b.contiguous();
  size_t n = static_cast<size_t>(x.numel()) * dtype_size(x.dtype());
  if (n == 0 || std::memcmp(x.raw_data(), y.raw_data(), n) == 0) return "";
  std::vector<double> u = x.to(DType::f64).to_vector<double>();
  std::vector<double> v = y.to(DType::f64).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < u.size(); ++i) worst = std::max(worst, std::abs(u[i] - v[i]));
  return str_cat("values differ (largest absolute difference ", worst, ")");
}

/// Compares two maps entry by entry with `differ` (""= equal); prints and counts differences.
template <class T, class F>
int diff_maps(const std::string& group, const std::map<std::string, T>& a,
              const std::map<std::string, T>& b, F differ, int& compared) {
  int bad = 0;
  std::set<std::string> names;
  for (const auto& kv : a) names.insert(kv.first);
  for (const auto& kv : b) names.insert(kv.first);
  for (const auto& name : names) {
    ++compared;
    auto ia = a.find(name), ib = b.find(name);
    std::string why = ia == a.end()   ? "only in the second"
                      : ib == b.end() ? "only in the first"
                                      : differ(ia->second, ib->second);
    if (why.empty()) continue;
    std::printf("differs  %s/%s: %s\n", group.c_str(), name.c_str(), why.c_str());
    ++bad;
  }
  return bad;
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

int ckpt_diff(const std::string& a, const std::string& b) {
  io::Checkpoint x = io::read_checkpoint(expand(a).front());
  io::Checkpoint y = io::read_checkpoint(expand(b).front());
  int compared = 1, bad = 0;
  if (x.step != y.step) {
    std::printf("differs  step: %lld vs %lld\n", static_cast<long long>(x.step),
                static_cast<long long>(y.step));
    ++bad;
  }
  bad += diff_maps("model", x.model, y.model, tensor_difference, compared);
  bad += diff_maps("optimizer", x.optimizer, y.optimizer, tensor_difference, compared);
  bad += diff_maps("extra", x.extra, y.extra, tensor_difference, compared);
  auto rng = [](const Generator::State& s, const Generator::State& t) {
    return s.seed == t.seed && s.offset == t.offset ? std::string() : "another seed or offset";
  };
  auto sampler = [](const io::Sampler::State& s, const io::Sampler::State& t) {
    return s.epoch == t.epoch && s.cursor == t.cursor ? std::string() : "another position";
  };
  std::vector<io::RankStreams> rx{{x.rng, x.samplers}}, ry{{y.rng, y.samplers}};
  rx.insert(rx.end(), x.other_ranks.begin(), x.other_ranks.end());
  ry.insert(ry.end(), y.other_ranks.begin(), y.other_ranks.end());
  rx.resize(std::max(rx.size(), ry.size()));
  ry.resize(rx.size());
  for (size_t r = 0; r < rx.size(); ++r) {
    std::string sub = r == 0 ? "" : str_cat("/rank", r);
    bad += diff_maps("rng" + sub, rx[r].rng, ry[r].rng, rng, compared);
    bad += diff_maps("sampler" + sub, rx[r].samplers, ry[r].samplers, sampler, compared);
  }
  ++compared;
  if (x.amp.has_value() != y.amp.has_value() ||
      (x.amp && (x.amp->scale != y.amp->scale || x.amp->growth_tracker != y.amp->growth_tracker ||
                 x.amp->skipped_steps != y.amp->skipped_steps))) {
    std::printf("differs  amp: the loss scaler's state\n");
    ++bad;
  }
  std::printf("%s: %d of %d entries differ (step %lld vs %lld)\n",
              bad == 0 ? "identical" : "different", bad, compared, static_cast<long long>(x.step),
              static_cast<long long>(y.step));
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
