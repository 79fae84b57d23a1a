// CUDA reduction kernels with the contract of cpu/reduce.h.
#pragma once

#include <vector>

#include "core/backend/cpu/reduce.h"
#include "core/tensor.h"

namespace strata::cuda {

/// out (contiguous, the kept dims in order) = reduction of x over `dims` (sorted, unique);
/// f32 sums accumulate in f64 as on the CPU; argmax gives the first maximum (NaN wins).
void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out);

}  // namespace strata::cuda
