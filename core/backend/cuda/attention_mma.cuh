// Internal to the fused attention: the problem description both kernel files share, and the
// tensor-core (WMMA) entry points of attention_mma.cu that attention.cu dispatches bf16 and
// f16 to (f32 stays on attention.cu's CUDA-core kernels).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace strata::cuda {

/// Sizes, scale and the mask of one attention call; `bh` indexes (batch, head) pairs.
struct AttentionProblem {
  int64_t H = 0, Tq = 0, Tk = 0, d = 0;
  float scale = 1;
  bool causal = false;
  const bool* mask = nullptr;  // (B, H, Tq, Tk) with strides ms (zeros where broadcast)
  int64_t ms[4] = {0, 0, 0, 0};
};

/// Whether query i attends key j: in range, not above the diagonal when causal, and the mask.
__device__ inline bool attends(const AttentionProblem& p, int64_t bh, int64_t i, int64_t j) {
  if (i >= p.Tq || j >= p.Tk || (p.causal && j > i)) return false;
  if (!p.mask) return true;
  const int64_t b = bh / p.H, h = bh % p.H;
  return p.mask[b * p.ms[0] + h * p.ms[1] + i * p.ms[2] + j * p.ms[3]];
}

/// Grid of (tiles of `block_rows` of `rows`, B * H) blocks for q (B, H, ., .); an Error when
/// B * H exceeds the grid's y limit.
inline dim3 attention_grid(const Tensor& q, int64_t rows, int64_t block_rows) {
  const int64_t bh = q.size(0) * q.size(1);
  check(bh <= 65535, "[scaled_dot_product_attention] batch * heads = ", bh,
        " exceeds the CUDA kernel's limit of 65535; split the batch");
  return dim3(static_cast<unsigned>((rows + block_rows - 1) / block_rows),
              static_cast<unsigned>(bh));
}

/// attention_forward for bf16/f16 q, k, v (contiguous, d <= 128) on tensor cores.
void attention_forward_mma(const AttentionProblem& p, const Tensor& q, const Tensor& k,
                           const Tensor& v, const Tensor& out, const Tensor& lse,
                           cudaStream_t stream);

/// The dK/dV and dQ passes of attention_backward for bf16/f16 on tensor cores; delta (B, H, Tq)
/// f32 holds rowsum(dout * out), computed by attention.cu.
void attention_backward_mma(const AttentionProblem& p, const Tensor& q, const Tensor& k,
                            const Tensor& v, const Tensor& dout, const Tensor& lse,
                            const Tensor& delta, const Tensor& dq, const Tensor& dk,
                            const Tensor& dv, cudaStream_t stream);

}  // namespace strata::cuda
