// A forward pass through the pipeline without autograd, for evaluation: each virtual stage
// runs on its stage in order and hands its activation to the next.
#pragma once

#include <cstdint>
#include <functional>

#include "distributed/communicator.h"

namespace strata::dist::pipeline {

/// Runs virtual stage `vs` (0 .. pipe.size() * virtual_stages - 1) as fn(vs, input) on the
/// stage that holds it (input undefined for vs 0) and returns what the last virtual stage
/// returned, a one-element value (e.g. a loss), on every stage. A collective over `pipe`
/// (rank = stage); call it with gradients off.
double pipeline_forward(Communicator& pipe, int64_t virtual_stages,
                        const std::function<Tensor(int64_t vs, const Tensor& input)>& fn);

}  // namespace strata::dist::pipeline
