// SyncBatchNorm from differentiable ops around all_reduce_sum, so the backward needs no
// hand-written kernel: autograd all-reduces the gradients of the per-channel sums.
#include "distributed/sync_batch_norm.h"

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/ops/elementwise.h"
#include "core/ops/norm.h"
#include "core/ops/reduce.h"

namespace strata::dist {
namespace {}  // namespace

Tensor all_reduce_sum(const Tensor& x, Communicator& comm) {
  check(x.defined() && (x.dtype() == DType::f32 || x.dtype() == DType::f64), "[all_reduce_sum] ",
        x.defined() ? x.desc() : std::string("undefined input"),
        ": needs an f32 or f64 tensor; convert with x.to(DType::f32)");
  Tensor out = x.detach().contiguous().clone();
  comm.all_reduce(out, ReduceOp::sum);
  Communicator* c = &comm;
  return record("all_reduce_sum", out, {x},
                [c](const Tensor& g) { return std::vector<Tensor>{all_reduce_sum(g, *c)}; });
}

Tensor sync_batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps, Communicator& comm) {
  check(x.defined() && x.dim() >= 2, "[sync_batch_norm] input ",
        x.defined() ? x.desc() : std::string("undefined"), " should be (N, C, ...)");
  if (!training || comm.size() == 1) {
    return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps);
  }
  // A bf16/f16 activation (a convolution's output under autocast) is normalised in f32 and
  // stays in its dtype, as batch_norm does; only f32/f64 sums cross the ranks.
  if (x.dtype() == DType::bf16 || x.dtype() == DType::f16) {
    return sync_batch_norm(x.to(DType::f32), running_mean, running_var, weight, bias, training,
                           momentum, eps, comm)
        .to(x.dtype());
  }
  check(x.dtype() == DType::f32 || x.dtype() == DType::f64, "[sync_batch_norm] input ", x.desc(),
        " must be f32 or f64 to be reduced over ranks; convert with x.to(DType::f32)");
  const int64_t C = x.size(1);
  // On x's device: NCCL reduces device tensors only.
  Tensor count = full({1}, static_cast<double>(x.numel() / C), DType::f64, x.device());
  comm.all_reduce(count, ReduceOp::sum);
  const double n = count.item();
  check(n > 1, "[sync_batch_norm] the global batch has ", n,
        " value(s) per channel; batch statistics need more than 1");
  auto dims = non_channel_dims(x);
  Tensor mean = all_reduce_sum(sum(x, dims), comm) / n;  // (C)
  Tensor xc = x - mean.reshape(channel_shape(x));
  Tensor var = all_reduce_sum(sum(square(xc), dims), comm) / n;  // (C), biased
  Tensor y = xc * rsqrt(var + eps).reshape(channel_shape(x));
  if (weight.defined()) y = y * weight.reshape(channel_shape(x));
  if (bias.defined()) y = y + bias.reshape(channel_shape(x));
  NoGradGuard guard;
  if (running_mean.defined()) {
    mul_(running_mean, 1.0 - momentum);
    add_(running_mean, mean.detach().to(running_mean.dtype()), momentum);
  }
  if (running_var.defined()) {
    // torch keeps the unbiased variance in the running buffer.
    mul_(running_var, 1.0 - momentum);
    add_(running_var, var.detach().to(running_var.dtype()), momentum * n / (n - 1));
  }
  return y;
}

SyncBatchNorm::SyncBatchNorm(const nn::BatchNormOptions& options,
                             std::shared_ptr<Communicator> comm)
    : nn::BatchNorm("SyncBatchNorm", options, 2, 5), comm_(std::move(comm)) {
  check(comm_ != nullptr, "[SyncBatchNorm] the communicator is null");
}

Tensor SyncBatchNorm::forward(const Tensor& x) {
  const auto& o = options();
  check(x.dim() >= 2 && x.dim() <= 5 && x.size(1) == o.num_features,
        "[SyncBatchNorm] expected input (N, C, ...) with 2 to 5 dims and C = ", o.num_features,
        ", got ", x.desc());
  double momentum = o.momentum.value_or(0.0);
  bool tracking = o.track_running_stats;
  if (is_training() && tracking) {
    NoGradGuard no_grad;
    Tensor tracked = num_batches_tracked();
    add_(tracked, scalar_like(1, tracked));
    if (!o.momentum) momentum = 1.0 / tracked.item();
  }
  // As BatchNorm: batch statistics in training or when nothing is tracked.
  bool use_batch_stats = is_training() || !tracking;
  return sync_batch_norm(x, tracking ? running_mean() : Tensor(),
                         tracking ? running_var() : Tensor(), weight(), bias(), use_batch_stats,
                         momentum, o.eps, *comm_);
}

}  // namespace strata::dist
