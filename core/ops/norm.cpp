// Normalisation layers: layer_norm (fused kernels, record_fused), batch_norm (fused kernels
// for forward and plain backward, differentiable ops under create_graph), group_norm and
// instance_norm (a row normalisation like layer_norm's, then a per-channel affine).
#include "core/ops/norm.h"

#include <algorithm>

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/norm.h"
#include "core/backend/cuda/norm.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

using Grads = std::vector<Tensor>;

void check_input(const char* op, const Tensor& x, int64_t min_dim, const char* what) {
  check(x.defined(), "[", op, "] input is undefined");
  check_floating(op, x);
  check(x.dim() >= min_dim, "[", op, "] input ", x.desc(), " should be ", what);
}

/// weight/bias/running stats: undefined, or of `shape` with x's dtype and device.
void check_param(const char* op, const Tensor& p, const char* name, const Shape& shape,
                 const Tensor& x, bool same_dtype = true) {
  if (!p.defined()) return;
  check(p.shape() == shape, "[", op, "] ", name, " ", p.desc(), " should have shape ",
        shape_str(shape), " to match input ", x.desc());
  check_same_device(op, p, x);
  if (same_dtype) check_same_dtype(op, p, x);
}

Tensor f32_or_undefined(const Tensor& t) { return t.defined() ? t.to(DType::f32) : t; }

Tensor flat_param(const Tensor& p, int64_t n) {
  return p.defined() ? p.detach().contiguous().reshape({n}) : Tensor();
}

/// d(normalise(x))/dx applied to gh (the gradient w.r.t. xhat), with differentiable ops;
/// the statistics are over `dims`, biased variance.
Tensor normalize_backward_ops(const Tensor& x, const Tensor& gh, const std::vector<int64_t>& dims,
                              double eps) {
  Tensor xc = x - mean(x, dims, true);
  Tensor rstd = rsqrt(mean(square(xc), dims, true) + eps);
  Tensor xh = xc * rstd;
  return rstd * (gh - mean(gh, dims, true) - xh * mean(gh * xh, dims, true));
}

/// Each row of x (R, L) normalised to zero mean and unit variance (no affine).
Tensor normalize_rows(const char* op, const Tensor& x, double eps) {
  if (storage_only(x.dtype())) return normalize_rows(op, x.to(DType::f32), eps).to(x.dtype());
  const int64_t R = x.size(0), L = x.size(1);
  Tensor x2 = x.detach().contiguous();
  Tensor out = empty({R, L}, x.dtype(), x.device());
  Tensor mu = empty({R}, x.dtype(), x.device()), rstd = empty({R}, x.dtype(), x.device());
  if (on_cuda(x2)) {
    cuda::layer_norm(x2, Tensor(), Tensor(), out, mu, rstd, eps);
  } else {
    cpu::layer_norm(x2, Tensor(), Tensor(), out, mu, rstd, eps);
  }
  return record(op, out, {x}, [x, x2, mu, rstd, eps](const Tensor& g) {
    if (GradMode::enabled()) return Grads{normalize_backward_ops(x, g, {1}, eps)};
    Tensor gx = empty(x2.shape(), x2.dtype(), x2.device());
    if (on_cuda(x2)) {
      cuda::layer_norm_backward(g.contiguous(), x2, mu, rstd, Tensor(), gx, Tensor(), Tensor());
    } else {
      cpu::layer_norm_backward(g.contiguous(), x2, mu, rstd, Tensor(), gx, Tensor(), Tensor());
    }
    return Grads{gx};
  });
}

Tensor channel_affine(Tensor y, const Tensor& w, const Tensor& b, const Tensor& x) {
  if (w.defined()) y = y * w.reshape(channel_shape(x));
  if (b.defined()) y = y + b.reshape(channel_shape(x));
  return y;
}

Tensor group_norm_impl(const char* op, const Tensor& x, int64_t groups, const Tensor& w,
                       const Tensor& b, double eps) {
  const int64_t N = x.size(0), C = x.size(1);
  check_param(op, w, "weight", {C}, x);
  check_param(op, b, "bias", {C}, x);
  Tensor xr = x.reshape({N * groups, x.numel() / std::max<int64_t>(N * groups, 1)});
  Tensor y = normalize_rows(op, xr, eps).reshape(x.shape());
  return channel_affine(y, w, b, x);
}

/// Eval-mode batch_norm: a per-channel affine with the running statistics as constants.
Tensor batch_norm_eval(const Tensor& x, const Tensor& rm, const Tensor& rv, const Tensor& w,
                       const Tensor& b, double eps) {
  check(rm.defined() && rv.defined(),
        "[batch_norm] eval mode (training=false) needs running_mean and running_var; pass "
        "them or use training=true");
  // bf16/f16 activations: the statistics and the affine stay in f32 (a running variance above
  // 65504 is inf in f16) and only the output is rounded, as in training mode.
  const DType c = compute_dtype(x.dtype());
  Tensor scale = rsqrt(rv.detach().to(c) + eps);
  if (w.defined()) scale = scale * w.to(c);
  Tensor shift = -(rm.detach().to(c) * scale);
  if (b.defined()) shift = shift + b.to(c);
  Tensor y = x.to(c) * scale.reshape(channel_shape(x)) + shift.reshape(channel_shape(x));
  return y.to(x.dtype());
}

/// running = (1 - momentum) * running + momentum * batch, in place and unrecorded.
void update_running(Tensor rm, Tensor rv, const Tensor& mu, const Tensor& var, double momentum,
                    int64_t count) {
  NoGradGuard guard;
  if (rm.defined()) {
    mul_(rm, 1.0 - momentum);
    add_(rm, mu, momentum);
  }
  if (rv.defined()) {
    // torch keeps the unbiased variance in the running buffer.
    mul_(rv, 1.0 - momentum);
    add_(rv, var, momentum * double(count) / double(count - 1));
  }
}

Grads batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& x3, const Tensor& w,
                          const Tensor& b, const Tensor& mu, const Tensor& rstd, double eps) {
  if (GradMode::enabled() && storage_only(x.dtype())) {
    // Double backward of a bf16/f16 batch norm: through ops on f32 copies, in x's dtype.
    Grads gr = batch_norm_backward(g.to(mu.dtype()), x.to(mu.dtype()), x3, w, b, mu, rstd, eps);
    if (gr[0].defined()) gr[0] = gr[0].to(x.dtype());
    return gr;
  }
  if (GradMode::enabled()) {
    auto dims = non_channel_dims(x);
    Tensor gh = w.defined() ? g * w.reshape(channel_shape(x)) : g;
    Tensor gx = x.requires_grad() ? normalize_backward_ops(x, gh, dims, eps) : Tensor();
    Tensor gw, gb;
    if (w.defined() && w.requires_grad()) {
      Tensor xc = x - mean(x, dims, true);
      gw = sum(g * xc * rsqrt(mean(square(xc), dims, true) + eps), dims);
    }
    if (b.defined() && b.requires_grad()) gb = sum(g, dims);
    return {gx, gw, gb};
  }
  const int64_t C = x3.size(1);
  Tensor gx = x.requires_grad() ? empty(x3.shape(), x3.dtype(), x3.device()) : Tensor();
  Tensor gw = w.defined() && w.requires_grad() ? empty({C}, mu.dtype(), x3.device()) : Tensor();
  Tensor gb = b.defined() && b.requires_grad() ? empty({C}, mu.dtype(), x3.device()) : Tensor();
  Tensor g3 = g.contiguous().reshape(x3.shape());
  if (on_cuda(x3)) {
    cuda::channel_norm_backward(g3, x3, mu, rstd, flat_param(w, C), gx, gw, gb);
  } else {
    cpu::channel_norm_backward(g3, x3, mu, rstd, flat_param(w, C), gx, gw, gb);
  }
  return {gx.defined() ? gx.reshape(x.shape()) : gx, gw, gb};
}

}  // namespace

/// (1, C, 1, ...) for broadcasting a per-channel (C) tensor against x (N, C, ...).
Shape channel_shape(const Tensor& x) {
  Shape s(x.dim(), 1);
  s[1] = x.size(1);
  return s;
}

/// Every dim of x except the channel dim 1.
std::vector<int64_t> non_channel_dims(const Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// Under autocast batch norm runs in its input's dtype, as in torch: a bf16/f16 activation is
// normalised with f32 statistics and parameters and stays bf16/f16 (the next convolution wants
// it so); only the precision of its output is that of the input.
Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  check_input("batch_norm", x, 2, "(N, C) or (N, C, ...)");
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(N * C, 1);
  // bf16/f16 activations take f32 (master) parameters as well as their own dtype's.
  const bool f32_params = storage_only(x.dtype()) &&
                          (!weight.defined() || weight.dtype() == DType::f32) &&
                          (!bias.defined() || bias.dtype() == DType::f32);
  check_param("batch_norm", weight, "weight", {C}, x, !f32_params);
  check_param("batch_norm", bias, "bias", {C}, x, !f32_params);
  check_param("batch_norm", running_mean, "running_mean", {C}, x, false);
  check_param("batch_norm", running_var, "running_var", {C}, x, false);
  if (!training) return batch_norm_eval(x, running_mean, running_var, weight, bias, eps);
  check(N * S > 1, "[batch_norm] expected more than 1 value per channel when training, got input ",
        x.desc());
  // bf16/f16: the CPU normalises f32 copies; the CUDA kernels read and write the storage type.
  if (widen_by_copy(x)) {
    return batch_norm(x.to(DType::f32), running_mean, running_var, f32_or_undefined(weight),
                      f32_or_undefined(bias), training, momentum, eps)
        .to(x.dtype());
  }
  const Tensor w = storage_only(x.dtype()) ? f32_or_undefined(weight) : weight;
  const Tensor b = storage_only(x.dtype()) ? f32_or_undefined(bias) : bias;
  const DType stat = compute_dtype(x.dtype());
  Tensor x3 = x.detach().contiguous().reshape({N, C, S});
  Tensor mu = empty({C}, stat, x.device()), var = empty({C}, stat, x.device());
  if (on_cuda(x3)) {
    cuda::channel_stats(x3, mu, var);
  } else {
    cpu::channel_stats(x3, mu, var);
  }
  Tensor rstd;
  {
    NoGradGuard guard;
    rstd = rsqrt(var + eps);
  }
  update_running(running_mean, running_var, mu, var, momentum, N * S);
  Tensor out = empty({N, C, S}, x.dtype(), x.device());
  if (on_cuda(x3)) {
    cuda::channel_norm(x3, mu, rstd, flat_param(w, C), flat_param(b, C), out);
  } else {
    cpu::channel_norm(x3, mu, rstd, flat_param(w, C), flat_param(b, C), out);
  }
  return record("batch_norm", out.reshape(x.shape()), {x, w, b},
                [x, x3, w, b, mu, rstd, eps](const Tensor& g) {
                  return batch_norm_backward(g, x, x3, w, b, mu, rstd, eps);
                });
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  if (autocast::wants_f32(x, normalized_shape, weight, bias, eps))
    return autocast::run_f32(layer_norm, x, normalized_shape, weight, bias, eps);
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  check_input("layer_norm", x, std::max<int64_t>(k, 1), "at least as long as normalized_shape");
  check(k > 0, "[layer_norm] normalized_shape is empty; give the trailing dims to normalise");
  Shape tail(x.shape().end() - k, x.shape().end());
  check(tail == normalized_shape, "[layer_norm] input ", x.desc(),
        " does not end in normalized_shape ", shape_str(normalized_shape));
  check_param("layer_norm", weight, "weight", normalized_shape, x);
  check_param("layer_norm", bias, "bias", normalized_shape, x);
  if (storage_only(x.dtype())) {
    return layer_norm(x.to(DType::f32), normalized_shape, f32_or_undefined(weight),
                      f32_or_undefined(bias), eps)
        .to(x.dtype());
  }
  const int64_t L = numel_of(normalized_shape), R = x.numel() / std::max<int64_t>(L, 1);
  Tensor x2 = x.detach().contiguous().reshape({R, L});
  Tensor w1 = flat_param(weight, L), b1 = flat_param(bias, L);
  Tensor out = empty({R, L}, x.dtype(), x.device());
  Tensor mu = empty({R}, x.dtype(), x.device()), rstd = empty({R}, x.dtype(), x.device());
  if (on_cuda(x)) {
    cuda::layer_norm(x2, w1, b1, out, mu, rstd, eps);
  } else {
    cpu::layer_norm(x2, w1, b1, out, mu, rstd, eps);
  }
  Shape xs = x.shape();
  return record_fused("layer_norm", out.reshape(xs), {x, weight, bias},
                      [x2, w1, weight, bias, mu, rstd, xs, normalized_shape](const Tensor& g) {
                        const int64_t L = x2.size(1);
                        Tensor gx = empty(x2.shape(), x2.dtype(), x2.device());
                        bool want_w = weight.defined() && weight.requires_grad();
                        bool want_b = bias.defined() && bias.requires_grad();
                        Tensor gw = want_w ? empty({L}, x2.dtype(), x2.device()) : Tensor();
                        Tensor gb = want_b ? empty({L}, x2.dtype(), x2.device()) : Tensor();
                        Tensor g2 = g.contiguous().reshape(x2.shape());
                        if (on_cuda(x2)) {
                          cuda::layer_norm_backward(g2, x2, mu, rstd, w1, gx, gw, gb);
                        } else {
                          cpu::layer_norm_backward(g2, x2, mu, rstd, w1, gx, gw, gb);
                        }
                        return Grads{gx.reshape(xs), want_w ? gw.reshape(normalized_shape) : gw,
                                     want_b ? gb.reshape(normalized_shape) : gb};
                      });
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  if (autocast::wants_f32(x, num_groups, weight, bias, eps))
    return autocast::run_f32(group_norm, x, num_groups, weight, bias, eps);
  check_input("group_norm", x, 2, "(N, C, ...)");
  const int64_t C = x.size(1);
  check(num_groups > 0 && C % num_groups == 0, "[group_norm] num_channels ", C, " of input ",
        x.desc(), " is not divisible by num_groups ", num_groups);
  return group_norm_impl("group_norm", x, num_groups, weight, bias, eps);
}

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  if (autocast::wants_f32(x, weight, bias, eps))
    return autocast::run_f32(instance_norm, x, weight, bias, eps);
  check_input("instance_norm", x, 3, "(N, C, L) or (N, C, ...) with spatial dims");
  return group_norm_impl("instance_norm", x, x.size(1), weight, bias, eps);
}

}  // namespace strata
