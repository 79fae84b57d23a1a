// CUDA dropout with the CPU's Philox mask (the same (seed, counter) gives the same mask),
// contract of cpu/embedding.h. Embedding itself uses cuda::index_select / index_add.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace strata::cuda {

void dropout(const Tensor& x, const Tensor& out, const Tensor& mask, uint64_t seed, uint64_t base,
             float keep, double scale);
void dropout_backward(const Tensor& g, const Tensor& mask, const Tensor& out, double scale);

}  // namespace strata::cuda
