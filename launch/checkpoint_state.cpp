// Ownership of checkpointed state: the first dp rank of each stage writes its stage's model
// tensors, optimizer state and its dp group's streams; with ZeRO every rank writes its shard.
// Random streams are "init"/"data" (the task's) and "model.<module>" (dropout layers).
#include "launch/checkpoint_state.h"

#include <charconv>
#include <cstdio>
#include <random>
#include <set>

#include "core/nn/embedding.h"

namespace strata::launch {
namespace {

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

/// The streams of every rank of this dp group, in dp-rank order, on every rank of it. A
/// collective: the group's ranks share a stage, so their stream names and order agree.
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
  dist::Communicator& host = parts.host_comm();  // host tensors: not NCCL's
  int n = host.size();
  auto k = static_cast<int64_t>(mine.size());
  std::vector<int64_t> all = mine;
  if (n > 1 && k > 0) {
    Tensor out = empty({n * k}, DType::i64);
    host.all_gather(from_vector<int64_t>(mine, {k}), out);
    all = out.to_vector<int64_t>();
  }
  std::vector<io::RankStreams> ranks(n);
  for (int r = 0; r < n; ++r) {
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

/// A fresh identity for one save, chosen by world rank 0 and shared by every file of it.
std::string agree_token(dist::Communicator& world) {
  std::random_device rd;
  uint64_t mine = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  Tensor t = from_vector<int64_t>({static_cast<int64_t>(mine)}, {1});
  if (world.size() > 1) world.broadcast(t, 0);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(t.to_vector<int64_t>()[0]));
  return buf;
}

/// "<param>/<slot>" -> its parameter name.
std::string param_of(const std::string& key) { return key.substr(0, key.find('/')); }

/// The optimizer's state by parameter name (plain optimizer): "0.3.exp_avg" -> "<name>/exp_avg".
std::map<std::string, Tensor> state_by_name(const TrainParts& parts) {
  std::vector<std::string> names = optimizer_param_names(parts);
  std::vector<size_t> first;  // flat index of each group's first parameter
  size_t n = 0;
  for (const auto& g : parts.optimizer->groups()) {
    first.push_back(n);
    n += g.params.size();
  }
  std::map<std::string, Tensor> out;
  for (const auto& [key, t] : parts.optimizer->state_dict()) {
    if (key == "step") {
      out[key] = t;
      continue;
    }
    size_t a = key.find('.'), b = key.find('.', a + 1);
    size_t group = std::stoul(key.substr(0, a)), index = std::stoul(key.substr(a + 1, b - a - 1));
    out[names.at(first.at(group) + index) + "/" + key.substr(b + 1)] = t;
  }
  return out;
}

/// Version-1 keys "<group>.<index>.<slot>" -> "<name>/<slot>" in this run's parameter order
/// (version 1 required the same model and groups, so the order is the one that wrote them).
std::map<std::string, Tensor> convert_v1(const std::map<std::string, Tensor>& state,
                                         const TrainParts& parts) {
  std::vector<std::string> names = optimizer_param_names(parts);
  std::vector<size_t> first;
  size_t n = 0;
  if (parts.zero) {
    first.push_back(0);  // ZeRO's parameters are one group here (the recipes build one)
  } else {
    for (const auto& g : parts.optimizer->groups()) {
      first.push_back(n);
      n += g.params.size();
    }
  }
  std::map<std::string, Tensor> out;
  for (const auto& [key, t] : state) {
    if (key == "step") {
      out[key] = t;
      continue;
    }
    size_t a = key.find('.'), b = a == std::string::npos ? a : key.find('.', a + 1);
    size_t group = 0, index = 0;
    bool ok = b != std::string::npos;
    if (ok) {
      auto r1 = std::from_chars(key.data(), key.data() + a, group);
      auto r2 = std::from_chars(key.data() + a + 1, key.data() + b, index);
      ok = r1.ec == std::errc() && r2.ec == std::errc() && group < first.size() &&
           first[group] + index < names.size();
    }
    check(ok, "[resume] the version-1 checkpoint's optimizer state '", key,
          "' does not name a parameter of this run's optimizer; resume it with the model and "
          "optimizer that wrote it");
    out[names[first[group] + index] + "/" + key.substr(b + 1)] = t;
  }
  return out;
}

/// Plain optimizer: "<name>/<slot>" -> "<group>.<index>.<slot>" for Optimizer::load_state_dict
/// (which moves each slot to its parameter's device).
std::map<std::string, Tensor> state_by_index(const std::map<std::string, Tensor>& state,
                                             const TrainParts& parts) {
  std::vector<std::string> names = optimizer_param_names(parts);
  std::map<std::string, std::string> index_of;
  size_t n = 0;
  const auto& groups = parts.optimizer->groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].params.size(); ++i) index_of[names[n++]] = str_cat(g, ".", i);
  }
  std::map<std::string, Tensor> out;
  for (const auto& [key, t] : state) {
    if (key == "step") {
      out[key] = t;
      continue;
    }
    auto it = index_of.find(param_of(key));
    check(it != index_of.end() && key.find('/') != std::string::npos,
          "[resume] the checkpoint's optimizer state '", key,
          "' is for a parameter this run's optimizer does not have; was it written for "
          "another model?");
    out[it->second + "." + key.substr(key.find('/') + 1)] = t;
  }
  return out;
}

}  // namespace

MeshPlace mesh_place(const TrainParts& parts) {
  MeshPlace m;
  m.world = parts.world ? parts.world : parts.comm;
  m.rank = m.world->rank();
  m.world_size = m.world->size();
  m.dp_rank = parts.comm->rank();
  m.dp = parts.comm->size();
  m.stage = parts.pipe ? parts.pipe->rank() : 0;
  m.pp = parts.pipe ? parts.pipe->size() : 1;
  return m;
}

std::vector<int64_t> part_ranks(int world_size, int dp, bool zero) {
  std::vector<int64_t> out;
  for (int r = 1; r < world_size; ++r) {
    if (zero || r % dp == 0) out.push_back(r);
  }
  return out;
}

std::vector<std::string> optimizer_param_names(const TrainParts& parts) {
  std::map<const void*, std::string> name_of;
  for (const auto& [name, p] : parts.task->model().named_parameters()) name_of[&p.impl()] = name;
  std::vector<Tensor> params =
      parts.zero ? parts.zero->parameters() : optim::all_params(*parts.optimizer);
  std::vector<std::string> out;
  for (const Tensor& p : params) {
    auto it = name_of.find(&p.impl());
    check_internal(it != name_of.end(), "an optimizer parameter is not a model parameter");
    out.push_back(it->second);
  }
  return out;
}

namespace {

/// The optimizer state this rank writes: by parameter name, tied copies left to their owner;
/// with ZeRO its shard's slices and the counters of parameters that start in its shard.
/// "step" goes in the main file only.
void capture_optimizer(TrainParts& parts, const MeshPlace& m, io::Checkpoint& c) {
  auto owned = [&](const std::string& key) {
    return key == "step" ? m.rank == 0 : parts.tied_copies.count(param_of(key)) == 0;
  };
  if (parts.zero) {
    dist::ShardState st = parts.zero->export_state(optimizer_param_names(parts));
    for (auto& [key, t] : st.whole) {
      if (owned(key)) c.optimizer[key] = t;
    }
    for (auto& [key, s] : st.slices) {
      if (owned(key)) c.optimizer_slices[key] = {s.shape, s.offset, s.values};
    }
  } else if (m.dp_rank == 0) {
    for (auto& [key, t] : state_by_name(parts)) {
      if (owned(key)) c.optimizer[key] = t;
    }
  }
}

/// The first dp rank of a stage writes the stage's model tensors, extra state and every
/// streams of its dp group (world rank stage * dp + j; rank 0's under the plain names).
void capture_stage(TrainParts& parts, const MeshPlace& m, std::vector<io::RankStreams> streams,
                   io::Checkpoint& c) {
  for (auto& [name, t] : parts.task->model().state_dict()) {
    if (!parts.tied_copies.count(name)) c.model[name] = t;
  }
  c.extra = parts.task->extra_state();
  for (int j = 0; j < m.dp; ++j) {
    int w = m.stage * m.dp + j;
    if (w == 0) {
      c.rng = std::move(streams[0].rng);
      c.samplers = std::move(streams[0].samplers);
      continue;
    }
    if (c.other_ranks.size() < static_cast<size_t>(w)) c.other_ranks.resize(w);
    c.other_ranks[w - 1] = std::move(streams[j]);
  }
}

}  // namespace

std::optional<io::Checkpoint> capture_checkpoint(TrainParts& parts, const Json& cfg,
                                                 const LaunchEnv& env, int64_t step,
                                                 int64_t epoch) {
  MeshPlace m = mesh_place(parts);
  std::string token = agree_token(*m.world);
  std::vector<io::RankStreams> streams = gather_streams(parts);
  if (m.rank != 0 && m.dp_rank != 0 && !parts.zero) return std::nullopt;
  io::Checkpoint c;
  c.step = step;
  c.epoch = epoch;
  c.token = token;
  c.part_rank = m.rank;
  if (m.dp_rank == 0) capture_stage(parts, m, std::move(streams), c);
  capture_optimizer(parts, m, c);
  if (m.rank == 0) {
    if (parts.scaler) {
      optim::LossScaler::State st = parts.scaler->state();
      c.amp = io::AmpState{st.scale, st.growth_tracker, parts.skipped_steps};
    }
    c.config = cfg;
    c.layout = Json{{"world_size", m.world_size},
                    {"rank", 0},
                    {"dp", m.dp},
                    {"pp", m.pp},
                    {"zero", parts.zero != nullptr},
                    {"launcher", env.launcher}};
    for (int64_t r : part_ranks(m.world_size, m.dp, parts.zero != nullptr)) {
      c.parts.push_back({r, io::part_file_name(step, r)});
    }
  }
  return c;
}

namespace {

/// Checks that a saved name has a live counterpart (on the layout that wrote the file every
/// rank has exactly the saved rank's names).
template <class Live, class Saved>
void check_no_strays(const std::map<std::string, Live*>& live,
                     const std::map<std::string, Saved>& saved, const char* what) {
  for (const auto& [name, value] : saved) {
    check(live.count(name), "[resume] the checkpoint's ", what, " '", name,
          "' has no counterpart in this run; was it written with another model or task?");
  }
}

/// The saved state of `name`: old rank `rank`'s if it had one, else the lowest old rank's
/// that had (a module that moved to another stage); null if no rank had it.
template <class T, class Get>
const T* find_saved(const std::vector<io::RankStreams>& saved, int rank, const std::string& name,
                    Get get) {
  if (static_cast<size_t>(rank) < saved.size()) {
    const auto& m = get(saved[rank]);
    if (auto it = m.find(name); it != m.end()) return &it->second;
  }
  for (const auto& r : saved) {
    const auto& m = get(r);
    if (auto it = m.find(name); it != m.end()) return &it->second;
  }
  return nullptr;
}

/// A sampler position saved by `saved_dp` replicas, for one of `dp`: every rank's cursor
/// counts samples of its shard, so the replicas together have taken cursor * saved_dp samples
/// of the epoch's global order, and each new replica starts at that global position.
io::Sampler::State reshard(const std::string& name, io::Sampler::State s, int64_t saved_dp,
                           int64_t dp) {
  int64_t global = s.cursor * saved_dp;
  check(global % dp == 0, "[resume] sampler '", name, "': the checkpoint's ", saved_dp,
        " ranks had taken ", global, " samples of epoch ", s.epoch, ", which ", dp,
        " ranks cannot split evenly; resume with a world size that divides ", global);
  return {s.epoch, global / dp};
}

/// Restores this rank's random streams and sampler positions (docs/checkpoint-format.md,
/// "Resuming on another layout"): rank r continues old rank r's stream of each name, else the
/// stream of that name from the old rank that had it; a rank the checkpoint lacks continues
/// its own seed at the saved offset. Samplers move through the global position.
void restore_streams(TrainParts& parts, const io::Checkpoint& ckpt) {
  MeshPlace m = mesh_place(parts);
  int64_t saved_world = ckpt.layout.value("world_size", int64_t{1});
  int64_t saved_dp = ckpt.layout.value("dp", saved_world);
  bool same_layout = saved_world == m.world_size && saved_dp == m.dp;
  std::vector<io::RankStreams> saved{{ckpt.rng, ckpt.samplers}};
  saved.insert(saved.end(), ckpt.other_ranks.begin(), ckpt.other_ranks.end());
  bool existed = m.rank < saved_world && static_cast<size_t>(m.rank) < saved.size();
  if (m.rank == 0 && !same_layout) {
    std::printf(
        "resume: the checkpoint was written by %lld ranks, this run has %d: samplers "
        "continue at the same global position; rank r continues rank r's random "
        "streams (a new rank: its own seed at rank 0's offset)\n",
        static_cast<long long>(saved_world), m.world_size);
    std::fflush(stdout);
  }
  auto gens = live_generators(parts);
  auto samplers = live_samplers(parts);
  if (same_layout && existed) {
    check_no_strays(gens, saved[m.rank].rng, "random stream");
    check_no_strays(samplers, saved[m.rank].samplers, "sampler");
  }
  for (auto& [name, g] : gens) {
    const auto* s = find_saved<Generator::State>(
        saved, existed ? m.rank : 0, name,
        [](const io::RankStreams& r) -> const auto& { return r.rng; });
    check(s != nullptr, "[resume] the checkpoint has no random stream '", name,
          "' that this run uses; was it written with another model or task?");
    g->set_state(existed ? *s : Generator::State{g->seed(), s->offset});
  }
  for (auto& [name, smp] : samplers) {
    const auto* s = find_saved<io::Sampler::State>(
        saved, existed ? m.rank : 0, name,
        [](const io::RankStreams& r) -> const auto& { return r.samplers; });
    check(s != nullptr, "[resume] the checkpoint has no sampler '", name,
          "' that this run uses; was it written with another model or task?");
    smp->set_state(same_layout && existed ? *s : reshard(name, *s, saved_dp, m.dp));
  }
}

/// The model tensors of this stage (every name of the checkpoint with one stage).
void restore_model(TrainParts& parts, const io::Checkpoint& ckpt) {
  nn::Module& model = parts.task->model();
  if (!parts.pipe || parts.pipe->size() == 1) {
    model.load_state_dict(ckpt.model, /*strict=*/true);
    return;
  }
  nn::StateDict mine;
  for (const auto& [name, t] : model.state_dict()) {
    auto it = ckpt.model.find(name);
    if (it != ckpt.model.end()) mine[name] = it->second;
  }
  model.load_state_dict(mine, /*strict=*/true);  // reports this stage's missing names
}

/// This rank's optimizer state by name: its parameters' (its shard under ZeRO), from a file
/// of any layout. With one stage every saved parameter must be this run's.
void restore_optimizer(TrainParts& parts, const io::Checkpoint& ckpt) {
  std::map<std::string, Tensor> state =
      ckpt.version == 1 ? convert_v1(ckpt.optimizer, parts) : ckpt.optimizer;
  if (parts.pipe && parts.pipe->size() > 1) {
    std::vector<std::string> names = optimizer_param_names(parts);
    std::set<std::string> mine(names.begin(), names.end());
    std::erase_if(state, [&](const auto& kv) {
      return kv.first != "step" && !mine.count(param_of(kv.first));
    });
  }
  if (parts.zero) {
    parts.zero->import_state(optimizer_param_names(parts), state);
  } else {
    parts.optimizer->load_state_dict(state_by_index(state, parts));
  }
}

/// fp16 runs continue with the saved loss scale (a checkpoint of a run without fp16 leaves
/// the configured initial scale); other runs ignore amp/.
void restore_amp(TrainParts& parts, const io::Checkpoint& ckpt) {
  if (!parts.scaler || !ckpt.amp) return;
  try {
    parts.scaler->set_state({ckpt.amp->scale, ckpt.amp->growth_tracker});
  } catch (const Error& e) {
    throw Error(str_cat("[resume] amp/ of the checkpoint is unusable: ", e.what()));
  }
  parts.skipped_steps = ckpt.amp->skipped_steps;
}

}  // namespace

void restore_checkpoint(TrainParts& parts, const io::Checkpoint& ckpt) {
  try {
    restore_model(parts, ckpt);
    restore_optimizer(parts, ckpt);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("[resume]", 0) == 0) throw;
    throw Error(
        str_cat("[resume] the checkpoint does not fit this run's model or optimizer: ", msg));
  }
  restore_streams(parts, ckpt);
  restore_amp(parts, ckpt);
  parts.task->load_extra_state(ckpt.extra);
}

}  // namespace strata::launch
