// What a checkpoint holds for a training run, and how a run picks the one to resume from.
// Random streams are named "init"/"data" (the task's) and "model.<module>" (dropout layers);
// every rank's streams and sampler positions are gathered to rank 0 and saved.
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

/// Every rank's streams, in rank order, on every rank. A collective: all ranks call it at the
/// same step boundary (they share the task, so the names and their order agree).
std::vector<io::RankStreams> gather_streams(TrainParts& parts) {
  auto gens = live_generators(parts);
  auto samplers = live_samplers(parts);
  std::vector<int64_t> mine;  // [seed, offset] per generator, then [epoch, cursor] per sampler
  for (auto& [name, g] : gens) {
    mine.push_back(static_cast<int64_t>(g->state().seed));
    mine.push_back(static_cast<int64_t>(g->state().offset));
  }
  for (auto& [name, s] : samplers) {
    mine.push_back(s->state().epoch);
    mine.push_back(s->state().cursor);
  }
  int world = parts.comm->size();
  auto k = static_cast<int64_t>(mine.size());
  std::vector<int64_t> all = mine;
  if (world > 1 && k > 0) {
    Tensor out = empty({world * k}, DType::i64);
    parts.comm->all_gather(from_vector<int64_t>(mine, {k}), out);
    all = out.to_vector<int64_t>();
  }
  std::vector<io::RankStreams> ranks(world);
  for (int r = 0; r < world; ++r) {
    const int64_t* v = all.data() + r * k;
    for (auto& [name, g] : gens) {
      ranks[r].rng[name] = {static_cast<uint64_t>(v[0]), static_cast<uint64_t>(v[1])};
      v += 2;
    }
    for (auto& [name, s] : samplers) {
      ranks[r].samplers[name] = {v[0], v[1]};
      v += 2;
    }
  }
  return ranks;
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
    apply(name, *live.at(name), value);
  }
}

/// A sampler position saved by `saved_world` ranks, for one of `world` ranks: every rank's
/// cursor counts samples of its shard, so the ranks together have taken cursor * saved_world
/// samples of the epoch's global order, and each new rank starts at that global position.
io::Sampler::State reshard(const std::string& name, io::Sampler::State s, int64_t saved_world,
                           int64_t world) {
  int64_t global = s.cursor * saved_world;
  check(global % world == 0, "[resume] sampler '", name, "': the checkpoint's ", saved_world,
        " ranks had taken ", global, " samples of epoch ", s.epoch, ", which ", world,
        " ranks cannot split evenly; resume with a world size that divides ", global);
  return {s.epoch, global / world};
}

/// Restores this rank's random streams and sampler positions (docs/checkpoint-format.md,
/// "Resuming on another layout"). On the layout that wrote the checkpoint every rank gets its own
/// streams back. Otherwise rank r continues the saved rank r's streams, a rank the checkpoint
/// lacks continues its own seed from rank 0's offset (streams shared by all ranks, like
/// "init", come out identical to rank 0's; per-rank ones stay distinct), and samplers move
/// through the global position so the ranks together continue the same global order.
void restore_streams(TrainParts& parts, const io::Checkpoint& ckpt) {
  int rank = parts.comm->rank();
  int64_t world = parts.comm->size();
  int64_t saved_world = ckpt.layout.value("world_size", int64_t{1});
  const io::RankStreams rank0{ckpt.rng, ckpt.samplers};
  bool own = static_cast<size_t>(rank) <= ckpt.other_ranks.size();
  const io::RankStreams& saved = rank == 0 || !own ? rank0 : ckpt.other_ranks[rank - 1];
  bool same_layout = own && world == saved_world;
  if (rank == 0 && world != saved_world) {
    std::printf(
        "resume: the checkpoint was written by %lld ranks, this run has %lld: samplers "
        "continue at the same global position; rank r continues rank r's random "
        "streams (a new rank: its own seed at rank 0's offset)\n",
        static_cast<long long>(saved_world), static_cast<long long>(world));
    std::fflush(stdout);
  }
  restore_named(live_generators(parts), saved.rng, "random stream",
                [own](const std::string&, Generator& g, const Generator::State& s) {
                  g.set_state(own ? s : Generator::State{g.seed(), s.offset});
                });
  restore_named(live_samplers(parts), saved.samplers, "sampler",
                [&](const std::string& name, io::Sampler& s, const io::Sampler::State& st) {
                  s.set_state(same_layout ? st : reshard(name, st, saved_world, world));
                });
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
  std::vector<io::RankStreams> ranks = gather_streams(parts);
  c.rng = std::move(ranks[0].rng);
  c.samplers = std::move(ranks[0].samplers);
  c.other_ranks.assign(std::make_move_iterator(ranks.begin() + 1),
                       std::make_move_iterator(ranks.end()));
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
  started_ = std::chrono::steady_clock::now();
  // Every rank takes part (the streams are gathered); rank 0 writes.
  io::Checkpoint ckpt = capture_checkpoint(parts, cfg_, env_, step, epoch);
  if (!enabled_) return;
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
  restore_streams(parts, ckpt);
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
