// Data-parallel equivalence checks that run unchanged on thread ranks and under mpirun:
// K steps of DP over `comm` must equal one process training on the global batch.
#pragma once

#include <string>

#include "distributed/communicator.h"

namespace strata::dist::testing {

struct DpCase {
  std::string model;  // "mlp" or "cnn"
  DType dtype = DType::f32;
  double tolerance = 0;  // max |dp - single| over every parameter element after K steps
  int64_t bucket_bytes = 25 << 20;
  int micro_steps = 1;  // > 1: gradient accumulation with no_sync
};

/// Trains a reference model on the global batch locally and a DP replica on this rank's
/// shard (started from a different seed on ranks > 0, so the start broadcast matters);
/// expects parameters within the case's tolerance and replicas bitwise equal across ranks.
void check_dp_matches_single_process(Communicator& comm, const DpCase& c);

/// A parameter used only on rank 0 gets rank 0's gradient / size on every rank; one used
/// nowhere keeps an undefined gradient; nothing deadlocks.
void check_dp_unused_parameters(Communicator& comm);

}  // namespace strata::dist::testing
