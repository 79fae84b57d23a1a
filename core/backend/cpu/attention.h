// CPU kernel for attention's masked, scaled softmax over the keys.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// scores (B, H, Tq, Tk) contiguous; mask bool expanded to (B, H, Tq, Tk) (any strides) or
/// undefined; causal masks key j > query i. y = softmax(scale * scores) over the attended
/// keys, 0 on masked keys, and a row with no attended key is all 0.
void masked_softmax(const Tensor& scores, const Tensor& mask, bool causal, double scale,
                    const Tensor& y);

}  // namespace strata::cpu
