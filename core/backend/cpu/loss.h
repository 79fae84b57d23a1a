// CPU kernels for the fused cross-entropy (log_softmax + NLL + label smoothing per row).
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// logits (M, C) contiguous f32/f64, target (M) i64 with every value in [0, C) or equal to
/// ignore_index. Writes per-row loss (M) = (1-s) * (lse - x[t]) + s/C * (C * lse - sum(x))
/// (0 on ignored rows) and lse (M) = log(sum(exp(x))).
void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& loss,
                   const Tensor& lse, int64_t ignore_index, double smoothing);
/// gx (M, C) = grow[i] * (exp(x - lse) - (1-s) * [c == t] - s/C), 0 on ignored rows.
void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, const Tensor& gx, int64_t ignore_index,
                            double smoothing);

}  // namespace strata::cpu
