// CPU kernels for copies between layouts and dtypes, and fills.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// dst[i] = convert(src[i]) for same-shaped tensors of any layout and dtype.
void copy(const Tensor& src, const Tensor& dst);
/// dst[i] = value, for any layout and dtype.
void fill(const Tensor& dst, double value);

}  // namespace strata::cpu
