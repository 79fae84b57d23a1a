// Element-wise ops: checks, broadcasting, dispatch and backward, side by side. Backward
// formulas are differentiable ops so that create_graph works; plain backward takes the
// fused kernels instead (GradMode is off then).
#include "core/ops/elementwise.h"

#include <cmath>
#include <numbers>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/copy.h"
#include "core/backend/cpu/elementwise.h"
#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/elementwise.h"
#include "core/ops/dispatch.h"

namespace strata {
namespace {

const char* binary_name(BinaryOp op) {
  static constexpr const char* kNames[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow",
                                           "eq",  "ne",  "lt",  "le",  "gt",      "ge"};
  return kNames[static_cast<int>(op)];
}

bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

// The kernel of the operands' device (see dispatch.h).
void binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (on_cuda(out)) return cuda::binary(op, a, b, out);
  cpu::binary(op, a, b, out);
}
void copy_kernel(const Tensor& src, const Tensor& dst) {
  if (on_cuda(dst)) return cuda::copy(src, dst);
  cpu::copy(src, dst);
}

/// Mixed f32 and bf16/f16 operands (autocast's outputs meeting f32 ones) promote to f32, as
/// in torch; f64 with another dtype stays an error.
bool needs_promotion(const Tensor& a, const Tensor& b) {
  auto low_or_f32 = [](DType t) { return t == DType::f32 || storage_only(t); };
  return a.dtype() != b.dtype() && low_or_f32(a.dtype()) && low_or_f32(b.dtype());
}
Tensor promoted(const Tensor& t) { return t.to(DType::f32); }

/// Forward of a binary op without autograd.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  if (needs_promotion(a, b)) return binary_forward(op, promoted(a), promoted(b));
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  if (widen_by_copy(a)) {
    Tensor r = binary_forward(op, a.to(DType::f32), b.to(DType::f32));
    return is_comparison(op) ? r : r.to(a.dtype());
  }
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, is_comparison(op) ? DType::b8 : a.dtype(), a.device());
  binary_kernel(op, a.expand(shape), b.expand(shape), out);
  return out;
}

const char* unary_name(UnaryOp op) {
  static constexpr const char* kNames[] = {
      "neg",     "exp",    "log",        "sqrt", "rsqrt",     "abs",   "sign", "tanh",
      "sigmoid", "relu",   "leaky_relu", "gelu", "gelu_tanh", "silu",  "sin",  "cos",
      "erf",     "square", "reciprocal", "pow",  "log1p",     "expm1", "step"};
  return kNames[static_cast<int>(op)];
}

Tensor unary_forward(UnaryOp op, const Tensor& x, double alpha = 0) {
  const char* name = unary_name(op);
  if (op != UnaryOp::neg && op != UnaryOp::abs && op != UnaryOp::sign) check_floating(name, x);
  if (widen_by_copy(x)) return unary_forward(op, x.to(DType::f32), alpha).to(x.dtype());
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (is_floating(x.dtype())) {
    if (on_cuda(x)) {
      cuda::unary(op, x, out, alpha);
    } else {
      cpu::unary(op, x, out, alpha);
    }
  } else {
    Tensor r = unary_forward(op, x.to(DType::f64), alpha);
    copy_kernel(r, out);
  }
  return out;
}

/// g * op'(x) through the fused kernel (plain backward only).
Tensor fused_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y,
                      double alpha = 0) {
  if (widen_by_copy(g)) {
    Tensor yy = y.defined() ? y.to(DType::f32) : y;
    return fused_backward(op, g.to(DType::f32), x.to(DType::f32), yy, alpha).to(g.dtype());
  }
  Tensor out = empty(g.shape(), g.dtype(), g.device());
  const Tensor& second = y.defined() ? y : x;
  const Tensor y_or_none = y.defined() ? y : Tensor();
  if (on_cuda(g)) {
    cuda::unary_backward(op, g, second.expand(g.shape()), y_or_none, out, alpha);
  } else {
    cpu::unary_backward(op, g, second.expand(g.shape()), y_or_none, out, alpha);
  }
  return out;
}

Tensor as_mask(const Tensor& cond, const Tensor& like) { return cond.to(like.dtype()); }

/// A unary op whose backward is g * d(x) with d built from differentiable ops.
template <class Deriv>
Tensor unary_op(UnaryOp op, const Tensor& x, Deriv deriv, double alpha = 0) {
  Tensor out = unary_forward(op, x, alpha);
  return record(unary_name(op), out, {x},
                [x, deriv](const Tensor& g) { return std::vector<Tensor>{mul(g, deriv(x))}; });
}

/// A unary op with a fused plain backward; `deriv` serves create_graph backward. Ops whose
/// derivative is written in their output (tanh, sigmoid, exp) save it detached and
/// recompute it from x only when building a graph.
template <class Deriv>
Tensor fused_unary_op(UnaryOp op, const Tensor& x, Deriv deriv, bool uses_output,
                      double alpha = 0) {
  Tensor out = unary_forward(op, x, alpha);
  Tensor saved = uses_output ? out.detach() : Tensor();
  return record(unary_name(op), out, {x}, [x, saved, deriv, op, alpha](const Tensor& g) {
    if (!GradMode::enabled()) return std::vector<Tensor>{fused_backward(op, g, x, saved, alpha)};
    return std::vector<Tensor>{mul(g, deriv(x))};
  });
}

}  // namespace

Tensor scalar_like(double value, const Tensor& like) {
  return scalar_tensor(value, like.dtype(), like.device());
}

Tensor add(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return add(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::add, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record("add", out, {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return sub(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::sub, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record("sub", out, {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return mul(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::mul, a, b);
  return record("mul", out, {a, b}, [a, b](const Tensor& g) {
    Tensor ga = a.requires_grad() ? sum_to(mul(g, b), a.shape()) : Tensor();
    Tensor gb = b.requires_grad() ? sum_to(mul(g, a), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return div(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::div, a, b);
  return record("div", out, {a, b}, [a, b](const Tensor& g) {
    Tensor ga = a.requires_grad() ? sum_to(div(g, b), a.shape()) : Tensor();
    Tensor gb = b.requires_grad() ? sum_to(neg(div(mul(g, a), square(b))), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return maximum(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::maximum, a, b);
  return record("maximum", out, {a, b}, [a, b](const Tensor& g) {
    // Ties split the gradient evenly, as in PyTorch.
    Tensor wa = add(as_mask(gt(a, b), g), mul(as_mask(eq(a, b), g), scalar_like(0.5, g)));
    return std::vector<Tensor>{sum_to(mul(g, wa), a.shape()),
                               sum_to(mul(g, sub(scalar_like(1, g), wa)), b.shape())};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return minimum(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::minimum, a, b);
  return record("minimum", out, {a, b}, [a, b](const Tensor& g) {
    Tensor wa = add(as_mask(lt(a, b), g), mul(as_mask(eq(a, b), g), scalar_like(0.5, g)));
    return std::vector<Tensor>{sum_to(mul(g, wa), a.shape()),
                               sum_to(mul(g, sub(scalar_like(1, g), wa)), b.shape())};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  if (needs_promotion(a, b)) return pow(promoted(a), promoted(b));
  Tensor out = binary_forward(BinaryOp::pow, a, b);
  return record("pow", out, {a, b}, [a, b](const Tensor& g) {
    Tensor ga = a.requires_grad()
                    ? sum_to(mul(g, mul(b, pow(a, sub(b, scalar_like(1, b))))), a.shape())
                    : Tensor();
    Tensor gb = b.requires_grad() ? sum_to(mul(g, mul(pow(a, b), log(a))), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor pow(const Tensor& x, double p) {
  if (p == 2.0) return square(x);
  return unary_op(
      UnaryOp::pow_scalar, x,
      [p](const Tensor& v) { return mul(pow(v, p - 1), scalar_like(p, v)); }, p);
}

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::neg, x);
  return record("neg", out, {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  return fused_unary_op(
      UnaryOp::exp, x, [](const Tensor& v) { return exp(v); }, true);
}
Tensor log(const Tensor& x) {
  return unary_op(UnaryOp::log, x, [](const Tensor& v) { return reciprocal(v); });
}
Tensor sqrt(const Tensor& x) {
  return unary_op(UnaryOp::sqrt, x,
                  [](const Tensor& v) { return mul(rsqrt(v), scalar_like(0.5, v)); });
}
Tensor rsqrt(const Tensor& x) {
  return unary_op(UnaryOp::rsqrt, x,
                  [](const Tensor& v) { return mul(pow(v, -1.5), scalar_like(-0.5, v)); });
}
Tensor abs(const Tensor& x) {
  return unary_op(UnaryOp::abs, x, [](const Tensor& v) { return sign(v); });
}
Tensor sign(const Tensor& x) {
  return unary_op(UnaryOp::sign, x, [](const Tensor& v) { return zeros_like(v); });
}
Tensor tanh(const Tensor& x) {
  return fused_unary_op(
      UnaryOp::tanh, x, [](const Tensor& v) { return sub(scalar_like(1, v), square(tanh(v))); },
      true);
}
Tensor sigmoid(const Tensor& x) {
  return fused_unary_op(
      UnaryOp::sigmoid, x,
      [](const Tensor& v) {
        Tensor s = sigmoid(v);
        return mul(s, sub(scalar_like(1, v), s));
      },
      true);
}
Tensor relu(const Tensor& x) {
  return fused_unary_op(
      UnaryOp::relu, x, [](const Tensor& v) { return as_mask(gt(v, scalar_like(0, v)), v); },
      false);
}
Tensor leaky_relu(const Tensor& x, double slope) {
  return fused_unary_op(
      UnaryOp::leaky_relu, x,
      [slope](const Tensor& v) {
        return where(gt(v, scalar_like(0, v)), scalar_like(1, v), scalar_like(slope, v));
      },
      false, slope);
}
Tensor gelu(const Tensor& x, bool tanh_approx) {
  if (tanh_approx) {
    return fused_unary_op(
        UnaryOp::gelu_tanh, x,
        [](const Tensor& v) {
          const double k = std::sqrt(2.0 / std::numbers::pi);
          Tensor inner = mul(add(v, mul(pow(v, 3.0), scalar_like(0.044715, v))), scalar_like(k, v));
          Tensor th = tanh(inner);
          Tensor dinner = mul(add(scalar_like(1, v), mul(square(v), scalar_like(3 * 0.044715, v))),
                              scalar_like(k, v));
          Tensor left = mul(add(scalar_like(1, v), th), scalar_like(0.5, v));
          Tensor right =
              mul(mul(mul(v, sub(scalar_like(1, v), square(th))), dinner), scalar_like(0.5, v));
          return add(left, right);
        },
        false);
  }
  return fused_unary_op(
      UnaryOp::gelu, x,
      [](const Tensor& v) {
        Tensor cdf = mul(add(scalar_like(1, v), erf(mul(v, scalar_like(M_SQRT1_2, v)))),
                         scalar_like(0.5, v));
        Tensor pdf =
            mul(exp(mul(square(v), scalar_like(-0.5, v))), scalar_like(0.3989422804014327, v));
        return add(cdf, mul(v, pdf));
      },
      false);
}
Tensor silu(const Tensor& x) {
  return fused_unary_op(
      UnaryOp::silu, x,
      [](const Tensor& v) {
        Tensor s = sigmoid(v);
        return mul(s, add(scalar_like(1, v), mul(v, sub(scalar_like(1, v), s))));
      },
      false);
}
Tensor sin(const Tensor& x) {
  return unary_op(UnaryOp::sin, x, [](const Tensor& v) { return cos(v); });
}
Tensor cos(const Tensor& x) {
  return unary_op(UnaryOp::cos, x, [](const Tensor& v) { return neg(sin(v)); });
}
Tensor erf(const Tensor& x) {
  return unary_op(UnaryOp::erf, x, [](const Tensor& v) {
    return mul(exp(neg(square(v))), scalar_like(2.0 / std::sqrt(std::numbers::pi), v));
  });
}
Tensor square(const Tensor& x) {
  return unary_op(UnaryOp::square, x, [](const Tensor& v) { return mul(v, scalar_like(2, v)); });
}
Tensor reciprocal(const Tensor& x) {
  return unary_op(UnaryOp::reciprocal, x,
                  [](const Tensor& v) { return neg(reciprocal(square(v))); });
}
Tensor log1p(const Tensor& x) {
  return unary_op(UnaryOp::log1p, x,
                  [](const Tensor& v) { return reciprocal(add(v, scalar_like(1, v))); });
}
Tensor expm1(const Tensor& x) {
  return unary_op(UnaryOp::expm1, x, [](const Tensor& v) { return exp(v); });
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  check(lo <= hi, "[clamp] lower bound ", lo, " exceeds upper bound ", hi);
  auto clamp_kernel = [lo, hi](const Tensor& in, const Tensor& out) {
    if (on_cuda(in)) return cuda::clamp(in, out, lo, hi);
    cpu::clamp(in, out, lo, hi);
  };
  Tensor out;
  if (widen_by_copy(x)) {
    out = empty(x.shape(), DType::f32, x.device());
    clamp_kernel(x.to(DType::f32), out);
    out = out.to(x.dtype());
  } else {
    out = empty(x.shape(), x.dtype(), x.device());
    clamp_kernel(x, out);
  }
  return record("clamp", out, {x}, [x, lo, hi](const Tensor& g) {
    Tensor inside =
        mul(as_mask(ge(x, scalar_like(lo, x)), g), as_mask(le(x, scalar_like(hi, x)), g));
    return std::vector<Tensor>{mul(g, inside)};
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::ge, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check(cond.dtype() == DType::b8, "[where] condition must be bool, got ", cond.desc());
  check_same_dtype("where", a, b);
  check_same_device("where", a, b);
  check_same_device("where", cond, a);
  Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.dtype(), a.device());
  if (on_cuda(out)) {
    cuda::where(cond.expand(shape), a.expand(shape), b.expand(shape), out);
  } else {
    cpu::where(cond.expand(shape), a.expand(shape), b.expand(shape), out);
  }
  return record("where", out, {a, b}, [cond, a, b](const Tensor& g) {
    Tensor zero = scalar_like(0, g);
    Tensor ga = a.requires_grad() ? sum_to(where(cond, g, zero), a.shape()) : Tensor();
    Tensor gb = b.requires_grad() ? sum_to(where(cond, zero, g), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

void add_(Tensor& a, const Tensor& b, double alpha) {
  check_same_device("add_", a, b);
  Tensor bb = alpha == 1.0 ? b : binary_forward(BinaryOp::mul, b, scalar_like(alpha, b));
  if (bb.dtype() != a.dtype()) bb = bb.to(a.dtype());
  if (widen_by_copy(a)) {
    copy_(a, binary_forward(BinaryOp::add, a, bb.expand(a.shape())));
    return;
  }
  binary_kernel(BinaryOp::add, a, bb.expand(a.shape()), a);
}

void mul_(Tensor& a, double s) {
  if (widen_by_copy(a)) {
    copy_(a, binary_forward(BinaryOp::mul, a, scalar_like(s, a)));
    return;
  }
  binary_kernel(BinaryOp::mul, a, scalar_like(s, a).expand(a.shape()), a);
}

void copy_(Tensor& a, const Tensor& b) {
  check_same_device("copy_", a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), "copy_");
  check(shape == a.shape(), "[copy_] source ", b.desc(), " does not broadcast to ", a.desc());
  copy_kernel(b.expand(a.shape()), a);
}

void fill_(Tensor& a, double value) {
  if (on_cuda(a)) return cuda::fill(a, value);
  cpu::fill(a, value);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, scalar_like(s, a)); }
Tensor operator-(const Tensor& a, double s) { return sub(a, scalar_like(s, a)); }
Tensor operator*(const Tensor& a, double s) { return mul(a, scalar_like(s, a)); }
Tensor operator/(const Tensor& a, double s) { return div(a, scalar_like(s, a)); }
Tensor operator+(double s, const Tensor& a) { return add(scalar_like(s, a), a); }
Tensor operator-(double s, const Tensor& a) { return sub(scalar_like(s, a), a); }
Tensor operator*(double s, const Tensor& a) { return mul(scalar_like(s, a), a); }
Tensor operator/(double s, const Tensor& a) { return div(scalar_like(s, a), a); }

}  // namespace strata
