// Fused scaled dot-product attention on the GPU (FlashAttention-2 style): the forward keeps
// the softmax online over key tiles and saves the log-sum-exp; the backward recomputes the
// probabilities from it. Same semantics as ops/attention.cpp's composed CPU path.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

/// Largest head dim the fused kernels take (padded to 32, 64 or 128 inside).
constexpr int64_t kMaxAttentionHeadDim = 128;

/// q (B, H, Tq, D), k and v (B, H, Tk, D), contiguous, one of f32/bf16/f16; mask bool
/// expanded to (B, H, Tq, Tk) (any strides) or undefined; causal masks key j > query i.
/// out (B, H, Tq, D) in q's dtype; lse (B, H, Tq) f32: log sum_j exp(scale * q.k_j) over the
/// attended keys, -inf for a row with none (its output is 0).
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       bool causal, double scale, const Tensor& out, const Tensor& lse);

/// dq, dk, dv (shapes and dtypes of q, k, v; contiguous) from dout (B, H, Tq, D) contiguous
/// and the forward's out and lse; deterministic (no atomics).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        bool causal, double scale, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv);

}  // namespace strata::cuda
