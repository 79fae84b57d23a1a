// Gradient clipping by the global norm, and L1/L2 penalties over parameters.
#pragma once

#include <limits>
#include <vector>

#include "core/tensor.h"

namespace strata::optim {

/// Scales every gradient by min(1, max_norm / (total + 1e-6)), where total is the p-norm of
/// all gradients together (p = inf: the largest |g|), as torch.nn.utils.clip_grad_norm_.
/// Returns total (the norm before clipping). Parameters without gradients are skipped.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2);
/// sum over `grads` of sum(|g|^p) (p = inf: the largest |g|), accumulated in f64; CPU
/// tensors use the fused CPU kernel, CUDA tensors the reduction ops with one host sync.
/// Undefined tensors are skipped.
double sum_abs_pow(const std::vector<Tensor>& grads, double norm_type);

/// The sum (or, with take_max, the largest) of 0-d device tensors, one per gradient, read
/// with one copy per device: a read per gradient would make the host wait for the GPU each
/// time. 0 for none.
double read_device_parts(std::vector<Tensor> parts, bool take_max);
/// sum over params of sum(|w|): differentiable, add coefficient * it to the loss.
Tensor l1_penalty(const std::vector<Tensor>& params);
/// sum over params of sum(w^2) (not halved): differentiable.
Tensor l2_penalty(const std::vector<Tensor>& params);

}  // namespace strata::optim
