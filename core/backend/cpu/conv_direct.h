// Direct (im2col-free) f32 convolution for stride-1 convs whose output rows are whole AVX2
// vectors: ResNet's 3x3 convs. conv.cpp routes supported geometries here; everything else,
// and f64, stays on im2col + GEMM, which the tests compare this path against.
#pragma once

#include <cstdint>

#include "core/backend/cpu/conv.h"

namespace strata::cpu {

/// Whether this build has the direct kernels (an x86-64 build with AVX2 and FMA).
bool direct_conv_built();

/// Whether the direct_conv_* kernels handle g: an AVX2 build, stride 1,
/// dilation 1, one group, padding < kernel size, and output (and input) widths that are
/// multiples of 8.
bool direct_conv_supported(const ConvGeometry& g);

/// y (N, C_out, out_h, out_w) = conv2d(x (N, C_in, H, W), w (C_out, C_in, kH, kW)).
void direct_conv_forward(const float* x, const float* w, float* y, const ConvGeometry& g);

/// gx (N, C_in, H, W) = the input adjoint of conv2d applied to gy (N, C_out, out_h, out_w):
/// a stride-1 conv of gy with the flipped, transposed kernel.
void direct_conv_input_grad(const float* gy, const float* w, float* gx, const ConvGeometry& g);

/// gw (C_out, C_in, kH, kW) = the weight adjoint of conv2d: sum over samples and pixels of
/// gy (N, C_out, out_h, out_w) times the shifted input x (N, C_in, H, W).
void direct_conv_weight_grad(const float* x, const float* gy, float* gw, const ConvGeometry& g);

}  // namespace strata::cpu
