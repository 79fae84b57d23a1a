// CPU kernels for softmax, log_softmax and logsumexp along one dimension. Tensors are
// contiguous and viewed as (outer, n, inner) with the reduced dimension n in the middle;
// inner == 1 (the last dimension) is the fast path.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// y = softmax(x) or log_softmax(x) along n. x, y: (outer, n, inner) contiguous, f32/f64.
void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log);
/// gx = y * (g - sum(g * y)) for softmax, gx = g - exp(y) * sum(g) for log_softmax, where y is
/// the forward output. All (outer, n, inner) contiguous.
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t n,
                      int64_t inner, bool log);
/// out (outer, inner) = log(sum(exp(x))) along n, stable (max subtracted first).
void logsumexp(const Tensor& x, const Tensor& out, int64_t outer, int64_t n, int64_t inner);

}  // namespace strata::cpu
