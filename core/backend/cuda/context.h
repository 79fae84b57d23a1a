// Per-device state the CUDA kernels share: the backend's stream (every kernel and copy of a
// device is ordered on it) and the cuBLASLt handle with its workspace. Owned by the CUDA
// backend (cuda_backend.cu), created on first use of a device.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <mutex>

#include "core/backend/cuda/plans.h"
#include "core/device.h"

struct cudnnContext;  // cudnn.h's handle type, declared here so kernels need not include it

namespace strata::cuda {

/// Makes `device` current and returns its stream; throws a clear error without a GPU.
cudaStream_t stream_for(Device device);

struct BlasLt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  GemmPlans* plans = nullptr;  // the algorithms chosen so far on this device
};
/// The cuBLASLt handle, workspace and GEMM plans of `device` (created on first use).
BlasLt blaslt_for(Device device);

/// The cuDNN handle of `device` (cudnnHandle_t; declared here without cudnn.h), bound to its
/// stream, with the lock its users hold (a cuDNN handle must not be used by two threads at
/// once) and the convolution plans chosen so far; created on first use.
struct Cudnn {
  ::cudnnContext* handle = nullptr;
  std::mutex* mutex = nullptr;
  ConvPlans* plans = nullptr;
};
Cudnn cudnn_for(Device device);

/// Multiprocessors of `device`, for sizing grids.
int sm_count(Device device);

}  // namespace strata::cuda
