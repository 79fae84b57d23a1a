// softmax and log_softmax along one dimension (fused, numerically stable).
#pragma once

#include "core/tensor.h"

namespace strata {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
/// log(sum(exp(x))) along dim, stable.
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace strata
