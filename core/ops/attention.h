// Scaled dot-product attention.
#pragma once

#include "core/tensor.h"

namespace strata {

/// q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) -> (B, H, Tq, Dv).
/// `mask` is bool, broadcastable to (B, H, Tq, Tk), true = attend (e.g. a padding mask
/// (B, 1, 1, Tk)); undefined for none. `causal` masks key j > query i. scale defaults to
/// 1/sqrt(D) when <= 0. There is no attention dropout (it would need a generator).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& mask = {}, bool causal = false,
                                    double scale = 0.0);

}  // namespace strata
