// CUDA softmax, log_softmax and logsumexp along one dimension, (outer, n, inner) contiguous,
// with the contract of cpu/softmax.h.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log);
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t n,
                      int64_t inner, bool log);
void logsumexp(const Tensor& x, const Tensor& out, int64_t outer, int64_t n, int64_t inner);

}  // namespace strata::cuda
