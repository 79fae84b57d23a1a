// Pooling over NCHW: max, average and adaptive average.
#pragma once

#include <array>

#include "core/tensor.h"

namespace strata {

/// x (N, C, H, W) -> (N, C, H_out, W_out); padding is -inf for max.
Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding = {0, 0});
/// Padding counts towards the divisor (torch's count_include_pad=True).
Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding = {0, 0});
/// x (N, C, H, W) -> (N, C, out_h, out_w) with torch's start/end index rule.
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size);

}  // namespace strata
