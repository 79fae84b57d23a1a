// CUDA fused cross-entropy (log_softmax + NLL + label smoothing per row), contract of
// cpu/loss.h.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& loss,
                   const Tensor& lse, int64_t ignore_index, double smoothing);
void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, const Tensor& gx, int64_t ignore_index,
                            double smoothing);

}  // namespace strata::cuda
