// View and copy ops beyond the Tensor members: slice_scatter (slice's backward), and the
// dtype conversion.
#pragma once

#include "core/tensor.h"

namespace strata {

/// A zero tensor of `shape` with `src` written into the slice [start:end:step] of `dim`.
Tensor slice_scatter(const Tensor& src, const Shape& shape, int64_t dim, int64_t start, int64_t end,
                     int64_t step);

}  // namespace strata
