// CPU kernels for dropout (the Philox mask); embedding's lookup and its scatter-add
// backward reuse cpu::index_select and cpu::index_add from index.h.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace strata::cpu {

/// mask[i] = uniform(philox(seed, base + i/4)[i%4]) < keep; out[i] = mask[i] ? x[i]*scale : 0.
/// x, out and mask (bool) are contiguous.
void dropout(const Tensor& x, const Tensor& out, const Tensor& mask, uint64_t seed, uint64_t base,
             float keep, double scale);
/// out[i] = mask[i] ? g[i]*scale : 0; all contiguous.
void dropout_backward(const Tensor& g, const Tensor& mask, const Tensor& out, double scale);

}  // namespace strata::cpu
