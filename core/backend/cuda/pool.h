// CUDA 2-D pooling with the contracts of cpu/pool.h (same geometry; contiguous f32 or f64
// tensors on one GPU; outputs overwritten): max with argmax indices, average, adaptive average.
#pragma once

#include "core/backend/cpu/pool.h"
#include "core/tensor.h"

namespace strata::cuda {

void max_pool2d(const Tensor& x, const Tensor& y, const Tensor& indices,
                const cpu::PoolGeometry& g);
void max_pool2d_scatter(const Tensor& gy, const Tensor& indices, const Tensor& gx,
                        const cpu::PoolGeometry& g);
void max_pool2d_gather(const Tensor& x, const Tensor& indices, const Tensor& y,
                       const cpu::PoolGeometry& g);
void avg_pool2d(const Tensor& x, const Tensor& y, const cpu::PoolGeometry& g);
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const cpu::PoolGeometry& g);

}  // namespace strata::cuda
