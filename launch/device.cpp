// Parsing the device setting and checking that the GPU it names is there.
#include "launch/device.h"

#include "core/backend/backend.h"
#include "core/backend/cuda/availability.h"

namespace strata::launch {
namespace {

/// The parsed setting; "cuda" (no index) is reported with index -1.
Device parse_setting(const std::string& value) {
  if (value == "cuda") return Device::cuda(-1);
  try {
    return parse_device(value);
  } catch (const Error&) {
    throw Error(str_cat("[config] device: unknown value '", value,
                        "'; use cpu, cuda (the GPU of this rank's local rank) or cuda:N (N >= 0)"));
  }
}

}  // namespace

Device configured_device(const Json& cfg) { return parse_setting(get<std::string>(cfg, "device")); }

Device training_device(const Json& cfg, const LaunchEnv& env) {
  std::string value = get<std::string>(cfg, "device");
  Device d = parse_setting(value);
  if (d.is_cpu()) return d;
  std::string why = cuda_unavailable_reason();
  if (!why.empty()) {
    throw DeviceUnavailable(str_cat("[config] device: '", value,
                                    "' needs a CUDA GPU, but this process has none (", why,
                                    "); use device: cpu, or run on a machine with an NVIDIA GPU "
                                    "and its driver"));
  }
  int count = cuda_backend().device_count();
  if (d.index < 0) {
    d.index = env.local_rank;
    if (d.index >= count) {
      throw DeviceUnavailable(
          str_cat("[config] device: 'cuda' picks the GPU of local rank ", env.local_rank,
                  ", but this node has ", count, " GPU(s); start at most ", count,
                  " ranks per node (one per GPU), or name one with device: cuda:N"));
    }
    return d;
  }
  if (d.index >= count) {
    throw DeviceUnavailable(
        str_cat("[config] device: '", value, "' names GPU ", d.index, ", but this node has ", count,
                " GPU(s) (cuda:0 to cuda:", count - 1, "); use one of those, or device: cuda"));
  }
  return d;
}

}  // namespace strata::launch
