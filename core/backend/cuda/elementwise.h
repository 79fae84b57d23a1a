// CUDA kernels for element-wise math, with the CPU kernels' contracts (cpu/elementwise.h,
// whose BinaryOp/UnaryOp enums they share): broadcasting operands arrive expanded.
#pragma once

#include "core/backend/cpu/elementwise.h"
#include "core/tensor.h"

namespace strata::cuda {

/// out = a (op) b, with a and b already expanded to out's shape (zero strides).
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
/// out = op(x; alpha), f32 or f64.
void unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha);
/// out = g * op'(x) (or of y = op(x) for tanh, sigmoid, exp).
void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y,
                    const Tensor& out, double alpha);
/// out = cond ? a : b, all expanded to out's shape.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
/// out = min(max(x, lo), hi).
void clamp(const Tensor& x, const Tensor& out, double lo, double hi);

}  // namespace strata::cuda
