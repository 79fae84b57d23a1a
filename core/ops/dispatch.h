// Shared plumbing of the op files: device checks and the f32 compute path for bf16/f16
// storage on the CPU.
#pragma once

#include "core/tensor.h"

namespace strata {

/// Throws unless t is on the CPU: kernels for other devices live in backend/cuda (issue 3).
void require_cpu_kernel(const char* op, const Tensor& t);

/// bf16 and f16 are storage formats on the CPU: kernels compute them in f32.
inline bool storage_only(DType t) { return t == DType::bf16 || t == DType::f16; }

/// The dtype a CPU kernel computes `t` in.
inline DType compute_dtype(DType t) { return storage_only(t) ? DType::f32 : t; }

}  // namespace strata
