// Building the pp x dp mesh from the config and the world communicator.
#include "launch/mesh.h"

#include "core/error.h"
#include "distributed/nccl_communicator.h"

namespace strata::launch {

namespace {

/// The communicator for the model's tensors over the host group `host`: NCCL on a CUDA device
/// when the job has several ranks (every rank of `host` calls this together), else `host`.
std::shared_ptr<dist::Communicator> device_group(const std::shared_ptr<dist::Communicator>& host,
                                                 const LaunchEnv& env, Device device) {
  if (!device.is_cuda() || env.world_size == 1) return host;
  return dist::make_nccl_communicator(*host, device.index);
}

}  // namespace

Mesh make_mesh(const Json& cfg, const LaunchEnv& env, std::shared_ptr<dist::Communicator> world,
               Device device) {
  Mesh m;
  m.device = device;
  auto pp = get<int64_t>(cfg, "parallel.pp");
  check(pp >= 1 && env.world_size % pp == 0, "[config] parallel.pp must divide the world size (",
        env.world_size, " ranks), got ", pp, "; launch pp * dp ranks");
  m.pp = static_cast<int>(pp);
  m.dp = env.world_size / m.pp;
  m.stage = env.rank / m.dp;
  m.dp_rank = env.rank % m.dp;
  auto& s = m.schedule;
  s.stages = m.pp;
  s.microbatches = get<int64_t>(cfg, "parallel.microbatches");
  s.virtual_stages = get<int64_t>(cfg, "parallel.virtual_stages");
  try {
    s.kind = dist::pipeline::parse_schedule_kind(get<std::string>(cfg, "parallel.schedule"));
    dist::pipeline::validate(s);
  } catch (const Error& e) {
    throw Error(str_cat("[config] parallel: ", e.what()));
  }
  check(m.pp > 1 || (s.microbatches == 1 && s.virtual_stages == 1), "[config] parallel.",
        s.microbatches != 1 ? "microbatches" : "virtual_stages",
        " needs pipeline stages; set parallel.pp > 1 or leave it at 1");
  m.balance = cfg["parallel"]["balance"].get<std::vector<int64_t>>();
  m.world = world;
  if (m.pp == 1) {
    m.dp_host = world;
    m.dp_group = device_group(m.dp_host, env, device);
    m.pipe = dist::make_single_communicator();
    return m;
  }
  // Collectives in the same order on every rank.
  m.dp_host = world->split(m.stage, m.dp_rank);
  auto pipe_host = world->split(m.dp_rank, m.stage);
  bool tied = m.first_stage() || m.last_stage();
  // Ranks off the tie group get groups of their own (a colour no replica uses).
  auto tie = world->split(tied ? m.dp_rank : m.dp + env.rank, m.stage);
  // NCCL communicators are created one group at a time, in the same order on every rank; the
  // tie group sums and broadcasts the tied weights themselves, so it moves device tensors too.
  m.dp_group = device_group(m.dp_host, env, device);
  m.pipe = device_group(pipe_host, env, device);
  if (tied) m.tie = device_group(tie, env, device);
  return m;
}

}  // namespace strata::launch
