// CPU kernels of 2-D pooling over (planes, H, W) = (N * C, H, W), one plane per OpenMP
// iteration: max (with argmax indices), average, adaptive average, and their adjoints.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace strata::cpu {

/// Windows of a pooling op. Adaptive windows follow torch: rows [floor(i * H / out_h),
/// ceil((i + 1) * H / out_h)); kernel, stride and padding are then unused.
struct PoolGeometry {
  int64_t planes = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  bool adaptive = false;
};

// Tensors are contiguous, f32 or f64; x-shaped ones are (planes, in_h, in_w) and y-shaped
// ones (planes, out_h, out_w). Outputs are overwritten.

/// y = window maxima (NaN wins), indices (i64) = their flat h * in_w + w in the plane.
void max_pool2d(const Tensor& x, const Tensor& y, const Tensor& indices, const PoolGeometry& g);
/// gx = zeros with gy added at `indices` (max_pool2d's backward).
void max_pool2d_scatter(const Tensor& gy, const Tensor& indices, const Tensor& gx,
                        const PoolGeometry& g);
/// y = x read at `indices` (the adjoint of max_pool2d_scatter).
void max_pool2d_gather(const Tensor& x, const Tensor& indices, const Tensor& y,
                       const PoolGeometry& g);
/// y = window means; fixed windows divide by kH * kW, padding included.
void avg_pool2d(const Tensor& x, const Tensor& y, const PoolGeometry& g);
/// gx = the adjoint of avg_pool2d applied to gy.
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeometry& g);

}  // namespace strata::cpu
