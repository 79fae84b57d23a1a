// CUDA layer normalisation forward and backward (row statistics in f64), contract of
// cpu/norm.h. batch_norm's channel kernels are still CPU-only.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out,
                const Tensor& mean, const Tensor& rstd, double eps);
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb);

}  // namespace strata::cuda
