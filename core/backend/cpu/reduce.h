// CPU reduction kernels over one set of dimensions.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace strata {

enum class ReduceOp { sum, max, min, argmax };

namespace cpu {

/// out (contiguous, the kept dims in order) = reduction of x over `dims` (sorted, unique).
/// argmax writes i64 indices into the flattened reduced dims.
void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out);

}  // namespace cpu
}  // namespace strata
