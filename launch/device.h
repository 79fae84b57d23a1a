// The `device` setting of a run: "cpu", "cuda" (this rank's GPU, by local rank) or "cuda:N",
// validated in one place; a CUDA device that this process cannot use is its own error type,
// so that `strata train` can tell "no GPU here" (exit 1) from a bad config (exit 2).
#pragma once

#include "core/device.h"
#include "core/error.h"
#include "launch/config.h"
#include "launch/env.h"

namespace strata::launch {

/// A CUDA device was asked for and this process has none that it can use.
class DeviceUnavailable : public Error {
 public:
  using Error::Error;
};

/// Parses `device` ("cpu", "cuda", "cuda:N" with N >= 0) without touching any GPU; "cuda"
/// comes back as index -1 (the local rank's GPU, chosen by training_device). Errors start with
/// "[config] device:" and name the value.
Device configured_device(const Json& cfg);

/// The device this rank trains on: "cuda" is cuda:<local rank>. Throws DeviceUnavailable when
/// the device is CUDA and no GPU is usable, or the GPU index is beyond this node's GPUs.
Device training_device(const Json& cfg, const LaunchEnv& env);

}  // namespace strata::launch
