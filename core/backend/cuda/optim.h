// CUDA optimizer updates, fused over many tensors per launch (the hyper-parameter structs
// and update formulas are those of cpu/optim.h). All tensors are contiguous and on one GPU.
#pragma once

#include <vector>

#include "core/backend/cpu/optim.h"
#include "core/tensor.h"

namespace strata::cuda {

/// SGD on each params[i] with grads[i] and bufs[i] (bufs may be empty when momentum == 0).
void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& bufs, const cpu::SgdHyper& h);
/// Adam / AdamW; max_sq may be empty unless amsgrad.
void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
               const std::vector<Tensor>& max_sq, const cpu::AdamHyper& h);
/// Adagrad on each params[i] with its accumulator sums[i].
void adagrad_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& sums, const cpu::AdagradHyper& h);
/// RMSprop; grad_avg may be empty unless centered, bufs unless momentum > 0.
void rmsprop_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& square_avg, const std::vector<Tensor>& grad_avg,
                  const std::vector<Tensor>& bufs, const cpu::RmspropHyper& h);

}  // namespace strata::cuda
