// CPU kernels of the optimizer updates: one fused, OpenMP-parallel pass per parameter
// (no tensor temporaries). param, grad and state are contiguous; state is f32 for bf16/f16
// parameters and the parameter's dtype otherwise.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

struct SgdHyper {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first = false;     // the momentum buffer starts as the first gradient, as in torch
  double grad_scale = 1;  // LARS's trust ratio multiplies (grad + wd * param)
};
/// torch.optim.SGD's update; `buf` is ignored when momentum == 0.
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdHyper& h);

struct AdamHyper {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double bias1 = 1, bias2_sqrt = 1;  // 1 - beta1^t and sqrt(1 - beta2^t)
  bool decoupled = false;            // AdamW: param *= 1 - lr * wd before the update
  bool amsgrad = false;
};
/// torch.optim.Adam / AdamW's update; `max_sq` is used only with amsgrad.
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, const Tensor& max_sq, const AdamHyper& h);

struct AdagradHyper {
  double clr = 0, eps = 0, weight_decay = 0;  // clr = lr / (1 + (t - 1) * lr_decay)
};
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum,
                  const AdagradHyper& h);

struct RmspropHyper {
  double lr = 0, alpha = 0, eps = 0, weight_decay = 0, momentum = 0;
  bool centered = false;
};
/// torch.optim.RMSprop's update; grad_avg is used only when centered, buf only with momentum.
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg,
                  const Tensor& grad_avg, const Tensor& buf, const RmspropHyper& h);

/// Sum of |x|^p over a contiguous floating tensor, accumulated in double (p = 2: squares;
/// p = inf: the maximum of |x|).
double sum_abs_pow(const Tensor& x, double p);

}  // namespace strata::cpu
