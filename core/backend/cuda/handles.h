// Move-only owners of CUDA and cuBLASLt handles: streams, events, the cuBLASLt handle, device
// buffers (the GEMM workspace) and cuBLASLt descriptors. Destructors never throw.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/backend/cuda/cuda_check.h"

namespace strata::cuda {

/// A unique owner of a handle type H released by Release(h).
template <class H, auto Release>
class Owner {
 public:
  Owner() = default;
  explicit Owner(H h) : h_(h) {}
  ~Owner() { reset(); }
  Owner(Owner&& o) noexcept : h_(std::exchange(o.h_, H{})) {}
  Owner& operator=(Owner&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, H{});
    }
    return *this;
  }
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;
  H get() const { return h_; }

 private:
  void reset() {
    if (h_) Release(h_);  // errors at teardown (driver already gone) are ignored on purpose
    h_ = H{};
  }
  H h_{};
};

/// A non-blocking stream on the current device.
class Stream {
 public:
  Stream() {
    cudaStream_t s = nullptr;
    STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    s_ = Owner<cudaStream_t, cudaStreamDestroy>(s);
  }
  cudaStream_t get() const { return s_.get(); }

 private:
  Owner<cudaStream_t, cudaStreamDestroy> s_;
};

/// An event for ordering streams and for timing (benchmarks).
class Event {
 public:
  explicit Event(bool timing = false) {
    cudaEvent_t e = nullptr;
    STRATA_CUDA_CHECK(
        cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
    e_ = Owner<cudaEvent_t, cudaEventDestroy>(e);
  }
  void record(cudaStream_t s) { STRATA_CUDA_CHECK(cudaEventRecord(e_.get(), s)); }
  void synchronize() { STRATA_CUDA_CHECK(cudaEventSynchronize(e_.get())); }
  /// Milliseconds from `start` to this event (both recorded with timing on).
  float elapsed_ms_since(const Event& start) const {
    float ms = 0;
    STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_.get(), e_.get()));
    return ms;
  }
  cudaEvent_t get() const { return e_.get(); }

 private:
  Owner<cudaEvent_t, cudaEventDestroy> e_;
};

inline void free_device(void* p) { cudaFree(p); }

/// Device memory outside the tensor allocator (the cuBLASLt workspace).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    void* p = nullptr;
    STRATA_CUDA_CHECK(cudaMalloc(&p, bytes));
    p_ = Owner<void*, free_device>(p);
  }
  void* get() const { return p_.get(); }
  size_t bytes() const { return bytes_; }

 private:
  Owner<void*, free_device> p_;
  size_t bytes_ = 0;
};

/// The cuBLASLt handle of one device.
class BlasLtHandle {
 public:
  BlasLtHandle() {
    cublasLtHandle_t h = nullptr;
    STRATA_CUBLAS_CHECK(cublasLtCreate(&h));
    h_ = Owner<cublasLtHandle_t, cublasLtDestroy>(h);
  }
  cublasLtHandle_t get() const { return h_.get(); }

 private:
  Owner<cublasLtHandle_t, cublasLtDestroy> h_;
};

using MatmulDesc = Owner<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using MatrixLayout = Owner<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using MatmulPreference = Owner<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

}  // namespace strata::cuda
