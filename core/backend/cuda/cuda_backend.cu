// CUDA memory: stream-ordered allocation from the device's default memory pool, one
// non-blocking stream per device (an RAII owner), statistics for the tests.
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/cuda/cuda_check.h"

namespace strata {
namespace {

/// Owns a CUDA stream.
class Stream {
 public:
  explicit Stream(int device) {
    STRATA_CUDA_CHECK(cudaSetDevice(device));
    STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~Stream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  void* allocate(int64_t nbytes, Device d) override {
    void* p = nullptr;
    STRATA_CUDA_CHECK(cudaMallocAsync(&p, std::max<int64_t>(nbytes, 1), stream(d)));
    int64_t now = current_.fetch_add(nbytes) + nbytes;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    allocations_.fetch_add(1);
    return p;
  }
  void deallocate(void* ptr, int64_t nbytes, Device d) override {
    cudaFreeAsync(ptr, stream(d));  // never throws from a destructor path
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
  int device_count() const override {
    int n = 0;
    // Any error (no driver, error 35 on GPU-less machines) means no usable GPU.
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
  }
  MemoryStats memory_stats(Device) const override {
    return {current_.load(), peak_.load(), allocations_.load()};
  }
  void reset_peak(Device) override { peak_.store(current_.load()); }

 private:
  cudaStream_t stream(Device d) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (streams_.empty()) {
      int n = device_count();
      check(n > 0,
            "[cuda] no CUDA device is available (cudaGetDeviceCount found none); "
            "run with device: cpu");
      streams_.resize(n);
    }
    check(d.index >= 0 && d.index < static_cast<int>(streams_.size()), "[cuda] device ", d.str(),
          " does not exist; this machine has ", streams_.size(), " GPU(s)");
    if (!streams_[d.index]) streams_[d.index] = std::make_unique<Stream>(d.index);
    return streams_[d.index]->get();
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> allocations_{0};
};

}  // namespace

Backend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

}  // namespace strata
