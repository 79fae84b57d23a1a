// CUDA 2-D convolution through cuDNN with the contracts of cpu/conv.h (same geometry; all
// tensors contiguous, of one dtype (f32, f64, or bf16/f16 on tensor cores) on one GPU;
// outputs overwritten).
#pragma once

#include "core/backend/cpu/conv.h"
#include "core/tensor.h"

namespace strata::cuda {

/// y (N, C_out, out_h, out_w) = conv2d(x (N, C_in, H, W), w) + bias (C_out, or undefined).
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const cpu::ConvGeometry& g);
/// gx (N, C_in, H, W) = the adjoint of conv2d in x applied to gy, plus bias (C_in, or
/// undefined): also conv_transpose2d's forward.
void conv2d_input_grad(const Tensor& gy, const Tensor& w, const Tensor& bias, const Tensor& gx,
                       const cpu::ConvGeometry& g);
/// gw (C_out, C_in / groups, kH, kW) = the adjoint of conv2d in w.
void conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Tensor& gw,
                        const cpu::ConvGeometry& g);

}  // namespace strata::cuda
