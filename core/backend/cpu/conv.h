// CPU kernels of 2-D convolution (NCHW): im2col/col2im around OpenBLAS GEMMs, one sample
// per OpenMP thread. The three kernels are conv2d's forward and its two adjoints.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace strata::cpu {

/// Geometry of a conv2d: input (batch, in_channels, in_h, in_w), weight
/// (out_channels, in_channels / groups, kernel_h, kernel_w), output
/// (batch, out_channels, out_h, out_w).
struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};

// All tensors are contiguous f32 or f64 of one dtype; outputs are overwritten.

/// y (N, C_out, out_h, out_w) = conv2d(x (N, C_in, H, W), w) + bias (C_out, or undefined).
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const ConvGeometry& g);
/// gx (N, C_in, H, W) = the adjoint of conv2d in x applied to gy (N, C_out, out_h, out_w),
/// plus bias (C_in, or undefined). This is also conv_transpose2d's forward.
void conv2d_input_grad(const Tensor& gy, const Tensor& w, const Tensor& bias, const Tensor& gx,
                       const ConvGeometry& g);
/// gw (C_out, C_in / groups, kH, kW) = the adjoint of conv2d in w: sum_n gy_n @ im2col(x_n)^T.
void conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Tensor& gw, const ConvGeometry& g);

/// gb (C) = sum of gy (N, C, H, W) over N, H and W: the bias gradient, in one pass.
void conv2d_bias_grad(const Tensor& gy, const Tensor& gb);

}  // namespace strata::cpu
