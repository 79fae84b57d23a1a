// Whether this process can run CUDA kernels, in words: usable from any build (no CUDA
// headers), so tests and the launcher can say why they skip or refuse a GPU.
#pragma once

#include <string>

namespace strata {

/// Empty when a CUDA GPU is usable; otherwise the reason, e.g. "cudaGetDeviceCount: no
/// CUDA-capable device is detected (100)" or "strata was built without CUDA (STRATA_CUDA=OFF)".
std::string cuda_unavailable_reason();

}  // namespace strata
