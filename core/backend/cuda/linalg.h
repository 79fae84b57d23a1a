// CUDA GEMM through cuBLASLt, contract of cpu/linalg.h.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

/// out[b] = alpha * a[b] @ b[b] + beta * out[b]. a: (batch, m, k), b: (batch, k, n), out
/// contiguous (batch, m, n); a and b may be transposed views. f32 (TF32 tensor cores when
/// allow_tf32), f64, or bf16/f16 (tensor cores, f32 accumulation and scaling).
void gemm(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta,
          bool allow_tf32 = false);
/// out (1, m, n) = a (1, m, k) @ b (1, k, n) + bias (n) on every row, the bias added by
/// cuBLASLt's epilogue (no separate pass). False, with nothing written, where the epilogue
/// does not apply (f64, batches, k = 0, a misaligned bias, no such algorithm): then use gemm.
bool gemm_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out,
               bool allow_tf32 = false);

}  // namespace strata::cuda
