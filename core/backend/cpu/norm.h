// CPU kernels for the normalisation layers: row normalisation (layer_norm, and group and
// instance norm without their affine part) and per-channel normalisation (batch_norm).
// All tensors are contiguous, f32 or f64; statistics accumulate in f64.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// x (R, L): out = (x - mean) * rstd * w + b per row; w, b (L) may be undefined.
/// mean, rstd (R) receive the row statistics (biased variance).
void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out,
                const Tensor& mean, const Tensor& rstd, double eps);
/// Gradients of layer_norm: gx (R, L); gw, gb (L) are written when defined.
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb);

/// x (N, C, S): mean and biased var (C) over N and S.
void channel_stats(const Tensor& x, const Tensor& mean, const Tensor& var);
/// x (N, C, S): out = (x - mean[c]) * rstd[c] * w[c] + b[c]; w, b may be undefined.
void channel_norm(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                  const Tensor& b, const Tensor& out);
/// Training-mode gradients of channel_norm (mean, rstd are the batch statistics).
void channel_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                           const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb);

}  // namespace strata::cpu
