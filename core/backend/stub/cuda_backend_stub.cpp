// Linked when strata is built without CUDA: every call explains how to get a CUDA build.
#include "core/backend/backend.h"
#include "core/error.h"

namespace strata {
namespace {

[[noreturn]] void no_cuda() {
  throw Error(
      "[cuda] this strata was built without CUDA; reconfigure with -DSTRATA_CUDA=ON on "
      "a machine with the CUDA toolkit, or use device: cpu");
}

class CudaStub final : public Backend {
 public:
  const char* name() const override { return "cuda (not built)"; }
  void* allocate(int64_t, Device) override { no_cuda(); }
  void deallocate(void*, int64_t, Device) override {}
  void copy_from_host(void*, const void*, int64_t, Device) override { no_cuda(); }
  void copy_to_host(void*, const void*, int64_t, Device) override { no_cuda(); }
  void copy_on_device(void*, const void*, int64_t, Device) override { no_cuda(); }
  void fill_zero(void*, int64_t, Device) override { no_cuda(); }
  void synchronize(Device) override { no_cuda(); }
  int device_count() const override { return 0; }
  MemoryStats memory_stats(Device) const override { return {}; }
  void reset_peak(Device) override {}
};

}  // namespace

Backend& cuda_backend() {
  static CudaStub backend;
  return backend;
}

}  // namespace strata
