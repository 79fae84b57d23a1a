// ZeRO-1 and cross-rank clipping checks that run unchanged on thread ranks and under mpirun:
// a ZeroOptimizer replica must track a DataParallel replica with the plain optimizer.
#pragma once

#include <string>

#include "distributed/communicator.h"

namespace strata::dist::testing {

struct ZeroCase {
  std::string model;      // "mlp" or "cnn" (see dp_checks.h)
  std::string optimizer;  // "sgd" (momentum 0.9) or "adamw" (two groups: weights, biases)
  DType dtype = DType::f32;
  double tolerance = 0;  // max |zero - dp| over parameter elements after K steps
  double max_norm = 0;   // > 0: clip the gradients' global 2-norm to this before each step
};

/// K steps of ZeRO-1 equal K steps of DataParallel plus the plain optimizer (parameters and
/// clipping norms within the tolerance); replicas stay bitwise equal across ranks; the
/// optimizer state is split: the ranks' state elements add up to one full copy.
void check_zero_matches_data_parallel(Communicator& comm, const ZeroCase& c);

/// A parameter that gets no gradient on any rank is neither updated nor given state, and a
/// parameter with a gradient on rank 0 only is updated with rank 0's gradient / size.
void check_zero_unused_parameters(Communicator& comm);

}  // namespace strata::dist::testing
