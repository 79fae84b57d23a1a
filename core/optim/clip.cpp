// Global-norm gradient clipping (one norm pass and one scaling pass per gradient) and the
// penalty terms built from differentiable ops.
#include "core/optim/clip.h"

#include <cmath>

#include "core/autograd/grad_mode.h"
#include "core/backend/cpu/optim.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"
#include "core/ops/reduce.h"

namespace strata::optim {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  check(norm_type > 0, "[clip_grad_norm_] norm_type must be positive (or inf), got ", norm_type);
  check(max_norm >= 0, "[clip_grad_norm_] max_norm must be >= 0, got ", max_norm);
  NoGradGuard guard;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  const bool inf = std::isinf(norm_type);
  const double acc = sum_abs_pow(grads, norm_type);
  const double total = inf ? acc : std::pow(acc, 1.0 / norm_type);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    for (Tensor& g : grads) mul_(g, coef);
  }
  return total;
}

namespace {

/// |g|^p of a CUDA gradient reduced on the device to a 0-d f64 tensor (f32 compute for
/// bf16/f16 storage; f32 sums accumulate in f64 in the reduction kernel).
Tensor device_abs_pow(const Tensor& g, double p) {
  Tensor a = abs(g.to(compute_dtype(g.dtype())));
  if (std::isinf(p)) return max(a).to(DType::f64);
  if (p == 1) return sum(a).to(DType::f64);
  return sum(p == 2 ? square(a) : pow(a, p)).to(DType::f64);
}

}  // namespace

double sum_abs_pow(const std::vector<Tensor>& grads, double norm_type) {
  NoGradGuard guard;
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  std::vector<Tensor> device_parts;
  for (const Tensor& g : grads) {
    if (!g.defined()) continue;
    if (on_cuda(g)) {
      device_parts.push_back(device_abs_pow(g, norm_type));
      continue;
    }
    double part = cpu::sum_abs_pow(g.contiguous(), norm_type);
    acc = inf ? std::max(acc, part) : acc + part;
  }
  const double part = read_device_parts(std::move(device_parts), inf);
  return inf ? std::max(acc, part) : acc + part;
}

double read_device_parts(std::vector<Tensor> parts, bool take_max) {
  NoGradGuard guard;
  double acc = 0;
  while (!parts.empty()) {  // one stacked reduction and one copy per device
    const Device d = parts.front().device();
    std::vector<Tensor> here, rest;
    for (Tensor& t : parts) (t.device() == d ? here : rest).push_back(std::move(t));
    Tensor all = stack(here, 0);
    const double v = (take_max ? max(all) : sum(all)).item();
    // NaN stays NaN (std::max would drop it): the loss scaler looks for it.
    acc = !take_max ? acc + v : (std::isnan(acc) || std::isnan(v) ? NAN : std::max(acc, v));
    parts = std::move(rest);
  }
  return acc;
}

Tensor l1_penalty(const std::vector<Tensor>& params) {
  check(!params.empty(), "[l1_penalty] needs at least one parameter");
  Tensor total = sum(abs(params[0]));
  for (size_t i = 1; i < params.size(); ++i) total = add(total, sum(abs(params[i])));
  return total;
}

Tensor l2_penalty(const std::vector<Tensor>& params) {
  check(!params.empty(), "[l2_penalty] needs at least one parameter");
  Tensor total = sum(square(params[0]));
  for (size_t i = 1; i < params.size(); ++i) total = add(total, sum(square(params[i])));
  return total;
}

}  // namespace strata::optim
