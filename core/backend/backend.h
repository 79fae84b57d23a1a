// The backend seam: memory, copies and synchronisation for one device type. Kernels are not
// backend methods; they live per op family in backend/{cpu,cuda}/<family>.
#pragma once

#include <cstdint>

#include "core/device.h"

namespace strata {

struct MemoryStats {
  int64_t current_bytes = 0;  // bytes allocated now
  int64_t peak_bytes = 0;     // high-water mark since the last reset_peak()
  int64_t allocations = 0;    // number of allocate() calls
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual void* allocate(int64_t nbytes, Device device) = 0;
  virtual void deallocate(void* ptr, int64_t nbytes, Device device) = 0;
  virtual void copy_from_host(void* dst, const void* src, int64_t nbytes, Device device) = 0;
  virtual void copy_to_host(void* dst, const void* src, int64_t nbytes, Device device) = 0;
  virtual void copy_on_device(void* dst, const void* src, int64_t nbytes, Device device) = 0;
  virtual void fill_zero(void* dst, int64_t nbytes, Device device) = 0;
  virtual void synchronize(Device device) = 0;
  virtual int device_count() const = 0;
  virtual MemoryStats memory_stats(Device device) const = 0;
  virtual void reset_peak(Device device) = 0;
};

/// The process-wide backend for a device type. Backends are allocators: like malloc they are
/// shared by the whole process; they hold no training state.
Backend& backend_for(DeviceType type);
inline Backend& backend_for(Device d) { return backend_for(d.type); }

Backend& cpu_backend();
/// The CUDA backend; in a build without CUDA, a stub whose every call throws a clear error.
Backend& cuda_backend();

}  // namespace strata
