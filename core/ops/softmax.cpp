// softmax, log_softmax and logsumexp: fused stable kernels forward; backward through the
// fused kernel in a plain backward, and through differentiable ops under create_graph.
#include "core/ops/softmax.h"

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/softmax.h"
#include "core/backend/cuda/softmax.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

using Grads = std::vector<Tensor>;

/// (outer, n, inner) around dimension d of `shape`.
struct Layout {
  int64_t outer = 1, n = 1, inner = 1;
};

Layout layout_of(const Shape& shape, int64_t d) {
  Layout l;
  for (int64_t i = 0; i < d; ++i) l.outer *= shape[i];
  l.n = shape[d];
  for (size_t i = d + 1; i < shape.size(); ++i) l.inner *= shape[i];
  return l;
}

void check_input(const char* op, const Tensor& x) {
  check(x.defined(), "[", op, "] input is undefined");
  check_floating(op, x);
}

/// softmax or log_softmax of x along d, no autograd.
Tensor softmax_forward(const Tensor& x, int64_t d, bool log) {
  if (storage_only(x.dtype())) return softmax_forward(x.to(DType::f32), d, log).to(x.dtype());
  Tensor xc = x.detach().contiguous();
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Layout l = layout_of(x.shape(), d);
  if (on_cuda(x)) {
    cuda::softmax(xc, y, l.outer, l.n, l.inner, log);
  } else {
    cpu::softmax(xc, y, l.outer, l.n, l.inner, log);
  }
  return y;
}

/// The fused backward of softmax/log_softmax given the forward output y.
Tensor softmax_backward_fused(const Tensor& g, const Tensor& y, int64_t d, bool log) {
  if (storage_only(g.dtype())) {
    return softmax_backward_fused(g.to(DType::f32), y.to(DType::f32), d, log).to(g.dtype());
  }
  Tensor gc = g.contiguous(), yc = y.contiguous();
  Tensor gx = empty(g.shape(), g.dtype(), g.device());
  Layout l = layout_of(g.shape(), d);
  if (on_cuda(g)) {
    cuda::softmax_backward(gc, yc, gx, l.outer, l.n, l.inner, log);
  } else {
    cpu::softmax_backward(gc, yc, gx, l.outer, l.n, l.inner, log);
  }
  return gx;
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_input(op, x);
  if (x.dim() == 0) return softmax_impl(x.reshape({1}), 0, log).reshape({});
  int64_t d = wrap_dim(dim, x.dim(), op);
  Tensor out = softmax_forward(x, d, log);
  Tensor saved = out.detach();
  return record(op, out, {x}, [x, saved, d, log](const Tensor& g) {
    if (!GradMode::enabled()) return Grads{softmax_backward_fused(g, saved, d, log)};
    // create_graph: recompute the output from x so the gradient is differentiable in x.
    if (log) return Grads{sub(g, mul(softmax(x, d), sum(g, {d}, true)))};
    Tensor y = softmax(x, d);
    return Grads{mul(y, sub(g, sum(mul(g, y), {d}, true)))};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  if (autocast::wants_f32(x, dim)) return autocast::run_f32(softmax, x, dim);
  return softmax_impl(x, dim, false);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  if (autocast::wants_f32(x, dim)) return autocast::run_f32(log_softmax, x, dim);
  return softmax_impl(x, dim, true);
}

Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  if (autocast::wants_f32(x, dim, keepdim)) return autocast::run_f32(logsumexp, x, dim, keepdim);
  check_input("logsumexp", x);
  if (x.dim() == 0) return logsumexp(x.reshape({1}), 0, keepdim).reshape({});
  int64_t d = wrap_dim(dim, x.dim(), "logsumexp");
  Tensor xf = storage_only(x.dtype()) ? x.detach().to(DType::f32) : x.detach().contiguous();
  Shape kept = x.shape();
  kept[d] = 1;
  Tensor out = empty(kept, xf.dtype(), x.device());
  Layout l = layout_of(x.shape(), d);
  if (on_cuda(x)) {
    cuda::logsumexp(xf.contiguous(), out, l.outer, l.n, l.inner);
  } else {
    cpu::logsumexp(xf.contiguous(), out, l.outer, l.n, l.inner);
  }
  if (out.dtype() != x.dtype()) out = out.to(x.dtype());
  if (!keepdim) out = out.squeeze(d);
  return record("logsumexp", out, {x}, [x, d, keepdim](const Tensor& g) {
    Tensor gk = keepdim ? g : g.unsqueeze(d);
    // d lse / dx = softmax(x); recomputing it is cheaper than keeping it alive.
    return Grads{mul(gk, softmax(x, d))};
  });
}

}  // namespace strata
