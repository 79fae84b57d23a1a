// Global-norm clipping across ranks: each rank sums |g|^p over what it holds, and a sharded
// layout all-reduces the partial sums (in f64) before the norm is taken.
#include "distributed/grad_clip.h"

#include <cmath>
#include <string>

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/optim/clip.h"

namespace strata::dist {

double global_grad_norm(const std::vector<Tensor>& grads, double norm_type, Communicator& comm,
                        GradSharding sharding) {
  check(norm_type > 0, "[global_grad_norm] norm_type must be positive (or inf), got ", norm_type);
  NoGradGuard guard;
  const bool inf = std::isinf(norm_type);
  double acc = optim::sum_abs_pow(grads, norm_type);  // CPU kernel or CUDA reductions
  if (sharding == GradSharding::sharded) {
    // On the communicator's device (NCCL reduces device tensors only), also on a rank whose
    // shard holds no gradient.
    Tensor t = full({1}, acc, DType::f64, comm.device());
    comm.all_reduce(t, inf ? ReduceOp::max : ReduceOp::sum);
    acc = t.item();
  }
  return inf ? acc : std::pow(acc, 1.0 / norm_type);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       Communicator& comm, GradSharding sharding) {
  check(max_norm >= 0, "[clip_grad_norm_] max_norm must be >= 0, got ", max_norm);
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  // Every rank joins the all-reduce, even one that holds no gradient.
  const double total = global_grad_norm(grads, norm_type, comm, sharding);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    NoGradGuard guard;
    for (Tensor& g : grads) mul_(g, coef);
  }
  return total;
}

std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& values) {
  if (values.empty()) return {};
  // On the communicator's device: NCCL reduces device tensors only.
  Tensor t = from_vector<double>(values, {static_cast<int64_t>(values.size())}, comm.device());
  comm.all_reduce(t, ReduceOp::sum);
  return t.to_vector<double>();
}

double mean_over_ranks(Communicator& comm, double value) {
  return sum_over_ranks(comm, {value})[0] / comm.size();
}

double weighted_mean_over_ranks(Communicator& comm, double value, double weight) {
  auto s = sum_over_ranks(comm, {value * weight, weight});
  return s[1] == 0 ? 0.0 : s[0] / s[1];
}

}  // namespace strata::dist
