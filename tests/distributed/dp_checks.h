// Data-parallel equivalence checks that run unchanged on thread ranks and under mpirun:
// K steps of DP over `comm` must equal one process training on the global batch.
#pragma once

#include <memory>
#include <string>

#include "core/nn/container.h"
#include "distributed/communicator.h"

namespace strata::dist::testing {

/// Rows in every step's global batch: divisible by 1, 2, 3 and 4 ranks (and 2 micro-steps).
constexpr int64_t kGlobalBatch = 12;

/// "mlp": Linear(8, 16), ReLU, Linear(16, 4); "cnn": Conv2d(2, 4, 3, pad 1), ReLU, Flatten,
/// Linear(144, 3). Initialised from `seed`, converted to `dtype`.
std::shared_ptr<nn::Sequential> make_model(const std::string& kind, uint64_t seed, DType dtype);

struct Batch {
  Tensor x;  // mlp (B, 8); cnn (B, 2, 6, 6)
  Tensor y;  // mlp (B, 4) targets; cnn (B) class indices
};
/// The global batch of `step` (the same on every rank).
Batch global_batch(const std::string& kind, int step, DType dtype);
/// Rows [begin, end) of a batch.
Batch rows(const Batch& b, int64_t begin, int64_t end);
/// mse (mlp) or cross-entropy (cnn) of the model on the batch.
Tensor loss_of(const std::string& kind, nn::Sequential& m, const Batch& b);
/// max |a - b| over elements, in f64.
double max_abs_diff(const Tensor& a, const Tensor& b);

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
