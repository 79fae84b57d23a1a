// Pipeline-parallel checks run on every rank, shared by the thread-rank tests and the
// mpirun tests: K SGD steps of a pipelined block stack against the unsplit model.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "distributed/communicator.h"
#include "distributed/pipeline/schedule.h"

namespace strata::dist::testing {

struct PipeCase {
  pipeline::ScheduleKind kind;
  int64_t microbatches;
  int64_t virtual_stages;
  DType dtype;
  double tolerance;  // on the loss and every parameter, absolute
};

/// Builds a stack of Linear+GELU blocks (and a final Linear) identically on every rank,
/// trains comm.size() pipeline stages for 3 SGD steps (momentum 0.9) on a global batch of
/// micro-batches, and expects the loss of every step and every parameter of this stage to
/// equal the unsplit model trained on the whole batch. Returns the largest difference seen.
double check_pipeline_matches_single_process(Communicator& comm, const PipeCase& c);

}  // namespace strata::dist::testing
