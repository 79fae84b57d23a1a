// Loss functions. Reductions follow torch: "mean" (default), "sum" or "none".
#pragma once

#include <string>

#include "core/tensor.h"

namespace strata {

enum class Reduction { none, mean, sum };

/// logits (N, C) or (N, C, d...) and integer targets (N) or (N, d...). Targets equal to
/// ignore_index contribute nothing and are excluded from the mean. label_smoothing in
/// [0, 1] mixes the one-hot target with the uniform distribution, as torch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::mean);
/// Numerically stable sigmoid + binary cross-entropy; pos_weight (C) may be undefined.
Tensor bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& pos_weight = {},
                       Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace strata
