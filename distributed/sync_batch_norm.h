// SyncBatchNorm: batch normalisation whose training statistics are those of the global batch
// over every data-parallel rank, with the gradients of the statistics all-reduced too.
#pragma once

#include <memory>

#include "core/nn/norm.h"
#include "distributed/communicator.h"

namespace strata::dist {

/// Differentiable sum over ranks: forward all-reduces x (f32 or f64); backward all-reduces
/// the gradient, because every rank's loss depends on the sum. Collective in both passes;
/// `comm` must outlive the backward pass.
Tensor all_reduce_sum(const Tensor& x, Communicator& comm);

/// batch_norm (core/ops/norm.h) whose batch statistics are the mean and biased variance over
/// every rank's x (N_r, C, ...), computed in two passes (sum, then squared deviations); the
/// running buffers get the global mean and the unbiased global variance. With training =
/// false the running statistics are used and nothing is communicated. Ranks may hold
/// different N_r; all must call it together.
Tensor sync_batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps, Communicator& comm);

/// A BatchNorm with the same parameters and buffers (weight, bias, running_mean, running_var,
/// num_batches_tracked) and torch's rules, whose statistics are synchronised over `comm`.
/// Accepts x (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W).
class SyncBatchNorm : public nn::BatchNorm {
 public:
  SyncBatchNorm(const nn::BatchNormOptions& options, std::shared_ptr<Communicator> comm);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<Communicator> comm_;
};

}  // namespace strata::dist
