// Shared plumbing of the op files: device checks, the CPU/CUDA kernel choice, and the f32
// compute path for bf16/f16 storage.
//
// The seam: an op file (ops/<family>.cpp) checks its inputs (same device, dtypes, shapes),
// then calls the kernel of the inputs' device: cpu::<kernel> from backend/cpu/<family>.h or
// cuda::<kernel> from backend/cuda/<family>.h, which declare the same signatures. The CUDA
// headers include no CUDA code, so op files compile in every build; a build without CUDA links
// backend/stub/cuda_kernels_stub.cpp instead of the .cu files (no tensor can reach it there).
#pragma once

#include "core/tensor.h"

namespace strata {

/// True when an op on `t` runs its CUDA kernel; callers have checked that inputs share t's
/// device.
inline bool on_cuda(const Tensor& t) { return t.device().is_cuda(); }

/// bf16 and f16 are storage formats on the CPU: kernels compute them in f32.
inline bool storage_only(DType t) { return t == DType::bf16 || t == DType::f16; }

/// The dtype a CPU kernel computes `t` in.
inline DType compute_dtype(DType t) { return storage_only(t) ? DType::f32 : t; }

/// Whether an op on t's bf16/f16 values goes through f32 copies: the CPU kernels have no
/// arithmetic on those storage types; the CUDA kernels read and write them as they are.
inline bool widen_by_copy(const Tensor& t) { return storage_only(t.dtype()) && !on_cuda(t); }

}  // namespace strata
