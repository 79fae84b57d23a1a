// CPU kernels for element-wise math: binary (broadcasting), unary, fused unary backward,
// where and clamp. Operands may be strided; outputs are written through their strides.
#pragma once

#include "core/tensor.h"

namespace strata {

enum class BinaryOp { add, sub, mul, div, maximum, minimum, pow, eq, ne, lt, le, gt, ge };
enum class UnaryOp {
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  abs,
  sign,
  tanh,
  sigmoid,
  relu,
  leaky_relu,
  gelu,
  gelu_tanh,
  silu,
  sin,
  cos,
  erf,
  square,
  reciprocal,
  pow_scalar,
  log1p,
  expm1,
  step
};

namespace cpu {

/// out = a (op) b, with a and b already expanded to out's shape (zero strides).
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
/// out = op(x; alpha). alpha is the slope of leaky_relu and the exponent of pow_scalar.
void unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha);
/// out = g * op'(x) for ops whose derivative is cheap to fuse (relu, gelu, silu, ...).
/// `y` is op(x) for tanh, sigmoid and exp and may be undefined otherwise.
void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y,
                    const Tensor& out, double alpha);
/// out = cond ? a : b, all expanded to out's shape.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
/// out = min(max(x, lo), hi).
void clamp(const Tensor& x, const Tensor& out, double lo, double hi);

}  // namespace cpu
}  // namespace strata
