// CUDA kernels for copies between layouts and dtypes, and fills (declared without CUDA
// headers: op files include this in every build; STRATA_CUDA=OFF links stub/cuda_kernels_stub).
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

/// dst[i] = convert(src[i]) for same-shaped tensors of any layout and dtype.
void copy(const Tensor& src, const Tensor& dst);
/// dst[i] = value, for any layout and dtype.
void fill(const Tensor& dst, double value);

}  // namespace strata::cuda
