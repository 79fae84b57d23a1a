// What a checkpoint holds for a training run, and how a run picks the one to resume from.
// Random streams are named "init"/"data" (the task's) and "model.<module>" (dropout layers).
#include "launch/checkpointing.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/nn/embedding.h"
#include "io/checkpoint_dir.h"

namespace strata::launch {
namespace {

namespace fs = std::filesystem;

std::map<std::string, Generator*> live_generators(TrainParts& parts) {
  std::map<std::string, Generator*> out;
  for (auto& [name, gen] : parts.task->generators()) out[name] = gen;
  for (auto& [name, module] : parts.task->model().named_modules("model")) {
    if (auto* drop = dynamic_cast<nn::Dropout*>(module)) out[name] = &drop->generator();
  }
  return out;
}

std::map<std::string, io::Sampler*> live_samplers(TrainParts& parts) {
  std::map<std::string, io::Sampler*> out;
  for (auto& [name, s] : parts.task->samplers()) out[name] = s;
  return out;
}

/// Checks that the names in a checkpoint and in this run agree, then applies each.
template <class Live, class Saved, class Apply>
void restore_named(const std::map<std::string, Live*>& live,
                   const std::map<std::string, Saved>& saved, const char* what, Apply apply) {
  for (const auto& [name, ptr] : live) {
    check(saved.count(name), "[resume] the checkpoint has no ", what, " '", name,
          "' that this run uses; was it written with another model or task?");
  }
  for (const auto& [name, value] : saved) {
    check(live.count(name), "[resume] the checkpoint's ", what, " '", name,
          "' has no counterpart in this run; was it written with another model or task?");
    apply(*live.at(name), value);
  }
}

/// Dotted keys whose values differ between the checkpoint's config and this run's.
void diff_config(const Json& saved, const Json& now, const std::string& prefix,
                 std::vector<std::string>& out) {
  if (saved.is_object() && now.is_object()) {
    std::set<std::string> keys;
    for (auto it = saved.begin(); it != saved.end(); ++it) keys.insert(it.key());
    for (auto it = now.begin(); it != now.end(); ++it) keys.insert(it.key());
    for (const auto& k : keys) {
      diff_config(saved.value(k, Json()), now.value(k, Json()),
                  prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (saved != now) {
    out.push_back(prefix + " (" + saved.dump() + " -> " + now.dump() + ")");
  }
}

void announce(const io::Checkpoint& ckpt, const std::string& path, const Json& cfg) {
  std::printf("resume: continuing from %s (step %lld, epoch %lld)\n", path.c_str(),
              static_cast<long long>(ckpt.step), static_cast<long long>(ckpt.epoch));
  std::vector<std::string> diffs;
  diff_config(ckpt.config, cfg, "", diffs);
  for (const auto& d : diffs)
    std::printf("resume: config differs from the checkpoint's: %s\n", d.c_str());
  std::fflush(stdout);
}

std::optional<io::Checkpoint> resume_from_dir(const std::string& dir, const Json& cfg, bool rank0) {
  io::CheckpointDir folder(dir, 1);
  std::vector<std::string> errors;
  auto found = folder.newest_valid(&errors);
  if (!found) {
    check(errors.empty(), "[resume] no checkpoint in ", dir,
          " loads; the newest fails with: ", errors.empty() ? "" : errors.front(),
          ". Remove the damaged files to start fresh, or pass --resume PATH");
    if (rank0) std::printf("resume: no checkpoint in %s; starting fresh\n", dir.c_str());
    return std::nullopt;
  }
  for (const std::string& path : folder.files()) {
    if (path == found->path) break;
    // A damaged file newer than the resume point is moved aside so that retention (newest K
    // by step) never prefers it over the checkpoints this run writes.
    std::error_code ec;
    fs::rename(path, path + ".damaged", ec);
  }
  if (rank0) {
    for (const auto& msg : found->skipped) {
      std::printf("resume: skipping a damaged checkpoint (moved aside as *.damaged): %s\n",
                  msg.c_str());
    }
    announce(found->ckpt, found->path, cfg);
  }
  return std::move(found->ckpt);
}

}  // namespace

io::Checkpoint capture_checkpoint(TrainParts& parts, const Json& cfg, const LaunchEnv& env,
                                  int64_t step, int64_t epoch) {
  check(parts.optimizer != nullptr,
        "[checkpoint] parallel.zero: checkpoints of the sharded optimizer state are not "
        "supported yet; set checkpoint.every=0 or turn parallel.zero off");
  io::Checkpoint c;
  c.step = step;
  c.epoch = epoch;
  c.config = cfg;
  c.layout = Json{{"world_size", env.world_size},
                  {"rank", env.rank},
                  {"dp", env.world_size},
                  {"pp", 1},
                  {"launcher", env.launcher}};
  c.model = parts.task->model().state_dict();
  c.optimizer = parts.optimizer->state_dict();
  for (auto& [name, gen] : live_generators(parts)) c.rng[name] = gen->state();
  for (auto& [name, s] : live_samplers(parts)) c.samplers[name] = s->state();
  c.extra = parts.task->extra_state();
  return c;
}

Checkpointer::Checkpointer(const Json& cfg, const LaunchEnv& env)
    : cfg_(cfg),
      env_(env),
      enabled_(env.rank == 0),
      dir_(get<std::string>(cfg, "checkpoint.dir"), get<int64_t>(cfg, "checkpoint.keep")) {
  if (get<bool>(cfg, "checkpoint.async"))
    async_ = std::make_unique<io::AsyncCheckpointWriter>(dir_);
}

void Checkpointer::announce(const std::string& path, double seconds) const {
  std::error_code ec;
  double mb = static_cast<double>(fs::file_size(path, ec)) / 1e6;
  std::printf("checkpoint: saved %s (%.1f MB in %.2f s%s)\n", path.c_str(), mb, seconds,
              async_ ? ", in the background" : "");
  std::fflush(stdout);
}

void Checkpointer::poll() {
  if (!async_) return;
  std::string path = async_->poll();
  if (!path.empty()) {
    announce(path,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }
}

void Checkpointer::save(TrainParts& parts, int64_t step, int64_t epoch) {
  if (!enabled_) return;
  started_ = std::chrono::steady_clock::now();
  io::Checkpoint ckpt = capture_checkpoint(parts, cfg_, env_, step, epoch);
  if (async_) {
    async_->save(ckpt);  // waits for the previous save: at most one in flight
    return;
  }
  std::string path = dir_.save(ckpt);
  announce(path,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
}

void Checkpointer::finish() {
  if (!async_) return;
  std::string path = async_->wait();
  if (!path.empty()) {
    announce(path,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }
}

void restore_checkpoint(TrainParts& parts, const io::Checkpoint& ckpt) {
  check(parts.optimizer != nullptr,
        "[resume] parallel.zero: resuming the sharded optimizer state is not supported yet; "
        "resume with parallel.zero off");
  try {
    parts.task->model().load_state_dict(ckpt.model, /*strict=*/true);
    parts.optimizer->load_state_dict(ckpt.optimizer);
  } catch (const Error& e) {
    throw Error(
        str_cat("[resume] the checkpoint does not fit this run's model or optimizer: ", e.what()));
  }
  restore_named(live_generators(parts), ckpt.rng, "random stream",
                [](Generator& g, const Generator::State& s) { g.set_state(s); });
  restore_named(live_samplers(parts), ckpt.samplers, "sampler",
                [](io::Sampler& s, const io::Sampler::State& st) { s.set_state(st); });
  parts.task->load_extra_state(ckpt.extra);
}

std::optional<io::Checkpoint> find_resume(const std::string& mode, const Json& cfg, bool rank0) {
  std::string dir = get<std::string>(cfg, "checkpoint.dir");
  if (mode.empty() || mode == "none") {
    std::vector<std::string> existing = io::CheckpointDir(dir, 1).files();
    check(existing.empty() || get<int64_t>(cfg, "checkpoint.every") == 0, "[resume] ", dir,
          " already holds checkpoints of an earlier run (newest: ",
          existing.empty() ? "" : existing.front(),
          "); pass --resume auto to continue it, or set run_dir (or checkpoint.dir) to a new "
          "folder to start over");
    return std::nullopt;
  }
  if (mode == "auto") return resume_from_dir(dir, cfg, rank0);
  std::error_code ec;
  if (fs::is_directory(mode, ec)) return resume_from_dir(mode, cfg, rank0);
  check(fs::exists(mode, ec), "[resume] --resume ", mode,
        ": no such file or folder; pass auto, none or a checkpoint path");
  io::Checkpoint ckpt = io::read_checkpoint(mode);
  if (rank0) announce(ckpt, mode, cfg);
  return ckpt;
}

void trim_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    Json rec = Json::parse(line, nullptr, false);
    // A torn last line (the process died mid-write) is dropped along with later steps.
    if (!rec.is_discarded() && rec.contains("step") && rec["step"].get<int64_t>() <= step) {
      kept += line + '\n';
    }
  }
  in.close();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    check(out.good(), "[resume] cannot rewrite ", path, "; check run_dir");
  }
  check(std::rename(tmp.c_str(), path.c_str()) == 0, "[resume] cannot replace ", path);
}

}  // namespace strata::launch
