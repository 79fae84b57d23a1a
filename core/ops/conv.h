// 2-D convolution and transposed convolution (NCHW), with stride, padding, dilation, groups.
#pragma once

#include <array>

#include "core/tensor.h"

namespace strata {

struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  std::array<int64_t, 2> output_padding{0, 0};  // conv_transpose2d only
};

/// x (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out) or undefined
/// -> (N, C_out, H_out, W_out). Differentiable twice (backward is conv ops).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& p = {});
/// x (N, C_in, H, W), weight (C_in, C_out/groups, kH, kW), bias (C_out) or undefined
/// -> (N, C_out, H_out, W_out), the adjoint of conv2d as in torch.nn.functional.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Conv2dParams& p = {});

}  // namespace strata
