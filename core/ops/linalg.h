// Matrix products: matmul with batch broadcasting, and linear with a fused bias.
#pragma once

#include "core/tensor.h"

namespace strata {

/// torch.matmul semantics: 1-D operands are promoted, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
/// x (..., in) @ weight (out, in)^T + bias (out); bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace strata
