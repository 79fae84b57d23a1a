// Building the pp x dp mesh from the config and the world communicator.
#include "launch/mesh.h"

#include "core/error.h"

namespace strata::launch {

Mesh make_mesh(const Json& cfg, const LaunchEnv& env, std::shared_ptr<dist::Communicator> world) {
  Mesh m;
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
    m.dp_group = std::move(world);
    m.pipe = dist::make_single_communicator();
    return m;
  }
  // Collectives in the same order on every rank.
  m.dp_group = world->split(m.stage, m.dp_rank);
  m.pipe = world->split(m.dp_rank, m.stage);
  bool tied = m.first_stage() || m.last_stage();
  // Ranks off the tie group get groups of their own (a colour no replica uses).
  auto tie = world->split(tied ? m.dp_rank : m.dp + env.rank, m.stage);
  if (tied) m.tie = std::move(tie);
  return m;
}

}  // namespace strata::launch
