// CUDA memory and per-device state: stream-ordered allocation from the device's default memory
// pool, and per device one non-blocking stream, one cuBLASLt handle and its workspace, and one
// cuDNN handle (RAII owners, created on first use). Kernels reach them through context.h.
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/cuda/availability.h"
#include "core/backend/cuda/context.h"
#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cudnn_handles.h"
#include "core/backend/cuda/handles.h"

namespace strata {
namespace {

/// 32 MiB: what cuBLASLt's heuristics want for large Hopper GEMMs.
constexpr size_t kBlasWorkspaceBytes = size_t(32) << 20;

/// Everything one device owns; members are destroyed in reverse order (workspace, handle,
/// then the stream).
struct DeviceState {
  explicit DeviceState(int i) : index(select(i)) {
    STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, i));
    keep_freed_memory(i);
  }
  /// The default pool's release threshold is 0: every synchronisation would hand all freed
  /// memory back to the driver, and the next step's allocations would map it again. Keep it
  /// pooled, as a caching allocator does.
  static void keep_freed_memory(int i) {
    cudaMemPool_t pool = nullptr;
    STRATA_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, i));
    uint64_t keep = UINT64_MAX;
    STRATA_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  }
  /// Makes the device current before the members below are created on it.
  static int select(int i) {
    STRATA_CUDA_CHECK(cudaSetDevice(i));
    return i;
  }
  int index;
  cuda::Stream stream;
  std::unique_ptr<cuda::BlasLtHandle> blas;  // created on the first GEMM
  std::unique_ptr<cuda::DeviceBuffer> workspace;
  cuda::GemmPlans gemm_plans;
  std::unique_ptr<cuda::CudnnHandle> cudnn;  // created on the first convolution
  std::mutex cudnn_mutex;
  cuda::ConvPlans conv_plans;
  int sm_count = 0;
};

/// cudaGetDeviceCount's answer: the count, or its error string when it fails.
int query_device_count(std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error for later calls
    if (why) {
      *why = str_cat("cudaGetDeviceCount: ", cudaGetErrorString(err), " (", static_cast<int>(err),
                     ")");
    }
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount: 0 devices";
  return n;
}

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  void* allocate(int64_t nbytes, Device d) override {
    void* p = malloc_async(nbytes, d);
    int64_t now = current_.fetch_add(nbytes) + nbytes;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    allocations_.fetch_add(1);
    return p;
  }
  void deallocate(void* ptr, int64_t nbytes, Device d) override {
    cudaFreeAsync(ptr, state(d).stream.get());  // never throws from a destructor path
    current_.fetch_sub(nbytes);
  }
  void copy_from_host(void* dst, const void* src, int64_t n, Device d) override {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream(d)));
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream(d)));
  }
  void copy_to_host(void* dst, const void* src, int64_t n, Device d) override {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream(d)));
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream(d)));
  }
  void copy_on_device(void* dst, const void* src, int64_t n, Device d) override {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream(d)));
  }
  void fill_zero(void* dst, int64_t n, Device d) override {
    STRATA_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, stream(d)));
  }
  void synchronize(Device d) override { STRATA_CUDA_CHECK(cudaStreamSynchronize(stream(d))); }
  int device_count() const override { return query_device_count(nullptr); }
  MemoryStats memory_stats(Device) const override {
    return {current_.load(), peak_.load(), allocations_.load()};
  }
  void reset_peak(Device) override { peak_.store(current_.load()); }

  /// Makes d current and returns its stream.
  cudaStream_t stream(Device d) {
    DeviceState& s = state(d);
    STRATA_CUDA_CHECK(cudaSetDevice(d.index));
    return s.stream.get();
  }

  cuda::BlasLt blaslt(Device d) {
    DeviceState& s = state(d);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!s.blas) {
      STRATA_CUDA_CHECK(cudaSetDevice(d.index));
      s.blas = std::make_unique<cuda::BlasLtHandle>();
      s.workspace = std::make_unique<cuda::DeviceBuffer>(kBlasWorkspaceBytes);
    }
    return {s.blas->get(), s.workspace->get(), s.workspace->bytes(), &s.gemm_plans};
  }

  cuda::Cudnn cudnn(Device d) {
    DeviceState& s = state(d);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!s.cudnn) {
      STRATA_CUDA_CHECK(cudaSetDevice(d.index));
      s.cudnn = std::make_unique<cuda::CudnnHandle>();
      STRATA_CUDNN_CHECK(cudnnSetStream(s.cudnn->get(), s.stream.get()));
    }
    return {s.cudnn->get(), &s.cudnn_mutex, &s.conv_plans};
  }

  DeviceState& state(Device d) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (devices_.empty()) {
      std::string why;
      int n = query_device_count(&why);
      check(n > 0, "[cuda] no CUDA device is available (", why,
            "); run with device: cpu, or on a machine with an NVIDIA GPU and driver");
      devices_.resize(n);
    }
    check(d.is_cuda() && d.index >= 0 && d.index < static_cast<int>(devices_.size()),
          "[cuda] device ", d.str(), " does not exist; this machine has ", devices_.size(),
          " GPU(s)");
    if (!devices_[d.index]) devices_[d.index] = std::make_unique<DeviceState>(d.index);
    return *devices_[d.index];
  }

 private:
  /// cudaMallocAsync from d's pool; on running out, the pool's kept memory (keep_freed_memory)
  /// goes back to the driver and the allocation is tried once more before a clear error.
  void* malloc_async(int64_t nbytes, Device d) {
    void* p = nullptr;
    const size_t bytes = std::max<int64_t>(nbytes, 1);
    cudaError_t err = cudaMallocAsync(&p, bytes, stream(d));
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      STRATA_CUDA_CHECK(cudaStreamSynchronize(stream(d)));
      cudaMemPool_t pool = nullptr;
      STRATA_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, d.index));
      STRATA_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
      err = cudaMallocAsync(&p, bytes, stream(d));
      if (err == cudaErrorMemoryAllocation) cudaGetLastError();
      check(err != cudaErrorMemoryAllocation, "[cuda] out of memory on ", d.str(), ": ", nbytes,
            " bytes requested with ", current_.load(),
            " in use; use a smaller batch, bf16, activation recomputation or more GPUs");
    }
    STRATA_CUDA_CHECK(err);
    return p;
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<DeviceState>> devices_;
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> allocations_{0};
};

CudaBackend& the_backend() {
  // Deliberately never destroyed: static destructors may run after the CUDA runtime has
  // unloaded, and destroying cuBLASLt handles or streams then can crash the process at exit
  // (PyTorch leaks its handles for the same reason). The OS reclaims everything.
  static CudaBackend* backend = new CudaBackend;
  return *backend;
}

}  // namespace

Backend& cuda_backend() { return the_backend(); }

std::string cuda_unavailable_reason() {
  std::string why;
  return query_device_count(&why) > 0 ? std::string() : why;
}

namespace cuda {

cudaStream_t stream_for(Device device) { return the_backend().stream(device); }
BlasLt blaslt_for(Device device) { return the_backend().blaslt(device); }
Cudnn cudnn_for(Device device) { return the_backend().cudnn(device); }
int sm_count(Device device) { return the_backend().state(device).sm_count; }

}  // namespace cuda
}  // namespace strata
