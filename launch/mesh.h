// The pp x dp mesh of a run: which pipeline stage and data-parallel replica this rank is, and
// the communicators of its groups. World rank = stage * dp + dp rank, so a stage's replicas are
// neighbours (their all-reduce stays within a node where it can).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/pipeline/schedule.h"
#include "launch/config.h"
#include "launch/env.h"

namespace strata::launch {

struct Mesh {
  int pp = 1, dp = 1;                        // stages x replicas = world size
  int stage = 0, dp_rank = 0;                // this rank's place
  dist::pipeline::ScheduleOptions schedule;  // stages = pp
  std::vector<int64_t> balance;              // parallel.balance as given ([] = automatic)
  Device device;                             // where this rank's model and batches live
  // world: every rank, host tensors (MPI). dp_group, pipe and tie move the model's tensors:
  // NCCL on CUDA when the world has several ranks, else host groups.
  std::shared_ptr<dist::Communicator> world, dp_group, pipe;
  /// The data-parallel group for host tensors (scalars: eval sums, random-stream states);
  /// the same communicator as dp_group on the CPU.
  std::shared_ptr<dist::Communicator> dp_host;
  /// The first and last stage of this replica (pp > 1), for tied embedding/head weights;
  /// null elsewhere.
  std::shared_ptr<dist::Communicator> tie;

  bool pipelined() const { return pp > 1; }
  /// The number of virtual stages (pp * virtual_stages).
  int64_t virtual_stages() const { return pp * schedule.virtual_stages; }
  bool first_stage() const { return stage == 0; }
  bool last_stage() const { return stage == pp - 1; }
};

/// Reads parallel.{pp,microbatches,schedule,virtual_stages,balance}, checks them against the
/// world size (errors start with "[config] parallel.") and splits `world` (host tensors) into
/// the groups; on a CUDA `device` with several ranks, dp_group and pipe are NCCL communicators
/// bootstrapped over those host groups. A collective: every rank calls it.
Mesh make_mesh(const Json& cfg, const LaunchEnv& env, std::shared_ptr<dist::Communicator> world,
               Device device = Device::cpu());

}  // namespace strata::launch
