// Loss functions: cross_entropy through a fused log_softmax + NLL kernel (plain backward
// fused too, create_graph through differentiable ops); the rest are compositions of
// differentiable element-wise ops and reductions.
#include "core/ops/loss.h"

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/loss.h"
#include "core/backend/cuda/loss.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/ops/softmax.h"

namespace strata {
namespace {

using Grads = std::vector<Tensor>;

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::none:
      return loss;
    case Reduction::sum:
      return sum(loss);
    case Reduction::mean:
      break;
  }
  return mean(loss);
}

/// i64 targets of the expected shape, every value a class index or ignore_index.
Tensor checked_targets(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  check(target.defined(), "[cross_entropy] target is undefined");
  check(target.dtype() == DType::i64 || target.dtype() == DType::i32,
        "[cross_entropy] target must hold class indices as i64 or i32, got ", target.desc());
  check_same_device("cross_entropy", logits, target);
  Shape want = logits.shape();
  want.erase(want.begin() + 1);
  check(target.shape() == want, "[cross_entropy] target ", target.desc(), " does not match logits ",
        logits.desc(), ": expected target shape ", shape_str(want),
        " (logits without the class dim 1)");
  Tensor t = target.to(DType::i64).contiguous();
  const int64_t C = logits.size(1), M = t.numel();
  // Checked on the host: the message names the bad value (one small copy for CUDA targets).
  Tensor th = t.to(Device::cpu());
  const int64_t* tp = th.data<int64_t>();
  for (int64_t i = 0; i < M; ++i) {
    check(tp[i] == ignore_index || (tp[i] >= 0 && tp[i] < C), "[cross_entropy] target value ",
          tp[i], " at flat index ", i, " is out of range for ", C, " classes (expected 0..", C - 1,
          " or ignore_index ", ignore_index, ")");
  }
  return t;
}

/// The permutation that moves the class dim 1 last: (N, C, d...) -> (N, d..., C).
Shape classes_last(int64_t ndim) {
  Shape order{0};
  for (int64_t d = 2; d < ndim; ++d) order.push_back(d);
  order.push_back(1);
  return order;
}

Shape inverse(const Shape& perm) {
  Shape inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return inv;
}

/// Differentiable gradient of the per-row losses w.r.t. the (M, C) logits: g * (p - coef),
/// with coef = (1-s) one_hot + s/C on kept rows and p masked to 0 on ignored rows.
Tensor cross_entropy_grad_ops(const Tensor& x2, const Tensor& t, const Tensor& g,
                              int64_t ignore_index, double s) {
  const int64_t M = x2.size(0), C = x2.size(1);
  Tensor coef = zeros({M, C}, DType::f64), keep = zeros({M, 1}, DType::f64);
  double *cp = coef.data<double>(), *kp = keep.data<double>();
  Tensor th = t.to(Device::cpu());
  const int64_t* tp = th.data<int64_t>();
  for (int64_t i = 0; i < M; ++i) {
    if (tp[i] == ignore_index) continue;
    kp[i] = 1;
    for (int64_t c = 0; c < C; ++c) cp[i * C + c] = s / C;
    cp[i * C + tp[i]] += 1 - s;
  }
  Tensor gk = mul(g.reshape({-1, 1}), keep.to(x2.dtype()).to(x2.device()));
  return mul(gk, sub(softmax(x2, 1), coef.to(x2.dtype()).to(x2.device())));
}

/// Per-element losses (N, d...) of logits with at least 2 dims, in the logits' compute dtype:
/// f32 for bf16/f16 logits, which the CUDA kernels read as they are (the CPU through an f32
/// copy); the gradient comes back in the logits' dtype.
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& t, int64_t ignore, double s) {
  if (widen_by_copy(logits)) {
    return cross_entropy_rows(logits.to(DType::f32), t, ignore, s);
  }
  const int64_t C = logits.size(1), M = t.numel();
  Shape order = classes_last(logits.dim());
  Tensor x2 = logits.detach().permute(order).contiguous().reshape({M, C});
  Tensor loss = empty({M}, compute_dtype(logits.dtype()), logits.device());
  Tensor lse = empty({M}, compute_dtype(logits.dtype()), logits.device());
  if (on_cuda(x2)) {
    cuda::cross_entropy(x2, t, loss, lse, ignore, s);
  } else {
    cpu::cross_entropy(x2, t, loss, lse, ignore, s);
  }
  Shape perm_shape = logits.permute(order).shape();
  Tensor out = loss.reshape(t.shape());
  return record("cross_entropy", out, {logits}, [=](const Tensor& g) {
    Tensor gx2;
    if (GradMode::enabled()) {
      Tensor x = logits.permute(order).reshape({M, C});
      gx2 = cross_entropy_grad_ops(x.to(lse.dtype()), t, g, ignore, s).to(x.dtype());
    } else {
      gx2 = empty({M, C}, x2.dtype(), x2.device());
      Tensor grow = g.contiguous().reshape({M});
      if (on_cuda(x2)) {
        cuda::cross_entropy_backward(x2, t, lse, grow, gx2, ignore, s);
      } else {
        cpu::cross_entropy_backward(x2, t, lse, grow, gx2, ignore, s);
      }
    }
    return Grads{gx2.reshape(perm_shape).permute(inverse(order))};
  });
}

/// log(1 + exp(-x)), stable, with the exact derivative -sigmoid(-x) everywhere.
Tensor softplus_neg(const Tensor& x) {
  Tensor value;
  {
    NoGradGuard guard;
    value = relu(neg(x)) + log1p(exp(neg(abs(x))));
  }
  return record("softplus", value, {x},
                [x](const Tensor& g) { return Grads{neg(mul(g, sigmoid(neg(x))))}; });
}

void check_pair(const char* op, const Tensor& input, const Tensor& target) {
  check(input.defined() && target.defined(), "[", op, "] input or target is undefined");
  check_floating(op, input);
  check_same_device(op, input, target);
  check_same_dtype(op, input, target);
  check(input.shape() == target.shape(), "[", op, "] input ", input.desc(), " and target ",
        target.desc(), " must have the same shape");
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                     double label_smoothing, Reduction reduction) {
  // Under autocast the loss is f32, as in torch; bf16/f16 logits need no f32 copy for that,
  // since the kernels compute every row in f32 (cross_entropy_rows).
  const bool autocast_f32 =
      autocast::wants_f32(logits, target, ignore_index, label_smoothing, reduction);
  check(logits.defined(), "[cross_entropy] logits are undefined");
  check_floating("cross_entropy", logits);
  check(label_smoothing >= 0.0 && label_smoothing <= 1.0,
        "[cross_entropy] label_smoothing must be in [0, 1], got ", label_smoothing);
  if (logits.dim() == 1) {
    // A single sample (C) with a 0-d target.
    check(target.defined() && target.dim() == 0, "[cross_entropy] logits ", logits.desc(),
          " need a 0-d target, got ", target.defined() ? target.desc() : "undefined");
    Tensor r = cross_entropy(logits.unsqueeze(0), target.reshape({1}), ignore_index,
                             label_smoothing, reduction);
    return reduction == Reduction::none ? r.reshape({}) : r;
  }
  check(logits.dim() >= 2 && logits.size(1) > 0, "[cross_entropy] logits ", logits.desc(),
        " should be (N, C) or (N, C, d...) with C > 0");
  Tensor t = checked_targets(logits, target, ignore_index);
  Tensor rows = cross_entropy_rows(logits, t, ignore_index, label_smoothing);
  // Outside autocast a bf16/f16 loss keeps its dtype.
  if (!autocast_f32 && rows.dtype() != logits.dtype()) rows = rows.to(logits.dtype());
  if (reduction != Reduction::mean) return reduce(rows, reduction);
  // The mean is over non-ignored targets (0/0 = NaN when all are ignored, as torch).
  Tensor th = t.to(Device::cpu());
  const int64_t* tp = th.data<int64_t>();
  int64_t kept = 0;
  for (int64_t i = 0; i < t.numel(); ++i) kept += tp[i] != ignore_index;
  return sum(rows) / static_cast<double>(kept);
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& pos_weight,
                       Reduction reduction) {
  if (autocast::wants_f32(logits, target, pos_weight, reduction))
    return autocast::run_f32(bce_with_logits, logits, target, pos_weight, reduction);
  check_pair("bce_with_logits", logits, target);
  // loss = (1 - t) x + lw softplus(-x), lw = 1 + (pos_weight - 1) t.
  Tensor sp = softplus_neg(logits);
  Tensor loss = (1.0 - target) * logits;
  if (pos_weight.defined()) {
    check_same_dtype("bce_with_logits", pos_weight, logits);
    broadcast_shapes(pos_weight.shape(), logits.shape(), "bce_with_logits");
    Tensor lw = 1.0 + (pos_weight - 1.0) * target;
    check(lw.shape() == logits.shape(), "[bce_with_logits] pos_weight ", pos_weight.desc(),
          " must broadcast to logits ", logits.desc());
    loss = loss + lw * sp;
  } else {
    loss = loss + sp;
  }
  return reduce(loss, reduction);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  if (autocast::wants_f32(input, target, reduction))
    return autocast::run_f32(mse_loss, input, target, reduction);
  check_pair("mse_loss", input, target);
  return reduce(square(input - target), reduction);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  if (autocast::wants_f32(input, target, reduction))
    return autocast::run_f32(l1_loss, input, target, reduction);
  check_pair("l1_loss", input, target);
  return reduce(abs(input - target), reduction);
}

}  // namespace strata
