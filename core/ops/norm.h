// Normalisation layers' functional forms.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace strata {

/// x (N, C, ...) normalised per channel C. In training, batch statistics are used and the
/// running buffers (C) are updated in place with `momentum` (unbiased variance, as torch);
/// in eval the running statistics are used. weight/bias (C) may be undefined.
Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);
/// Normalises over the trailing dims `normalized_shape`; weight/bias of that shape or
/// undefined. Fused forward/backward kernels.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps = 1e-5);
/// x (N, C, ...) normalised over groups of C/num_groups channels; weight/bias (C).
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps = 1e-5);
/// Per-sample, per-channel normalisation of x (N, C, ...); weight/bias (C) or undefined.
Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

/// (1, C, 1, ...): the shape that broadcasts a per-channel (C) tensor against x (N, C, ...).
Shape channel_shape(const Tensor& x);
/// Every dim of x except the channel dim 1: the dims batch statistics reduce over.
std::vector<int64_t> non_channel_dims(const Tensor& x);

}  // namespace strata
