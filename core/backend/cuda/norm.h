// CUDA layer normalisation and batch_norm's channel kernels, forward and backward (statistics
// in f64), with the contracts of cpu/norm.h.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out,
                const Tensor& mean, const Tensor& rstd, double eps);
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb);
void channel_stats(const Tensor& x, const Tensor& mean, const Tensor& var);
void channel_norm(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                  const Tensor& b, const Tensor& out);
void channel_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                           const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb);

}  // namespace strata::cuda
