// Host memory: 64-byte aligned allocations with statistics (pipeline tests assert on them).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/backend/backend.h"
#include "core/error.h"

namespace strata {
namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  void* allocate(int64_t nbytes, Device) override {
    size_t rounded = (static_cast<size_t>(std::max<int64_t>(nbytes, 1)) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) {
      throw Error(str_cat("[cpu] out of host memory allocating ", nbytes,
                          " bytes; reduce the batch size or model width"));
    }
    int64_t now = current_.fetch_add(nbytes) + nbytes;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    allocations_.fetch_add(1);
    return p;
  }
  void deallocate(void* ptr, int64_t nbytes, Device) override {
    std::free(ptr);
    current_.fetch_sub(nbytes);
  }
  void copy_from_host(void* dst, const void* src, int64_t n, Device) override {
    std::memcpy(dst, src, n);
  }
  void copy_to_host(void* dst, const void* src, int64_t n, Device) override {
    std::memcpy(dst, src, n);
  }
  void copy_on_device(void* dst, const void* src, int64_t n, Device) override {
    std::memcpy(dst, src, n);
  }
  void fill_zero(void* dst, int64_t n, Device) override { std::memset(dst, 0, n); }
  void synchronize(Device) override {}
  int device_count() const override { return 1; }
  MemoryStats memory_stats(Device) const override {
    return {current_.load(), peak_.load(), allocations_.load()};
  }
  void reset_peak(Device) override { peak_.store(current_.load()); }

 private:
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> allocations_{0};
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

Backend& backend_for(DeviceType type) {
  return type == DeviceType::cpu ? cpu_backend() : cuda_backend();
}

}  // namespace strata
