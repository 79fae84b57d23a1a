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

/// Self-attention on a packed projection qkv (B, T, 3C) = [q | k | v] with `heads` heads of
/// C / heads: (B, T, C), the same as scaled_dot_product_attention on the three head-split
/// slices, transposed back. On CUDA it is one autograd node whose backward writes the packed
/// gradient once (three slices would each zero-fill a (B, T, 3C) gradient and add them up).
Tensor packed_self_attention(const Tensor& qkv, int64_t heads, bool causal = true);

}  // namespace strata
