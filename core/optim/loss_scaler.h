// Dynamic loss scaling for fp16 training (the rule of torch.cuda.amp.GradScaler): the loss is
// multiplied by a scale before backward so small gradients survive in fp16; the gradients are
// divided by it before the step; a step whose gradients hold inf or NaN is skipped and the
// scale backs off, and after growth_interval clean steps in a row the scale grows.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace strata::optim {

struct LossScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  /// Checks the options (factors around 1, a positive scale and interval).
  explicit LossScaler(const LossScalerOptions& options = {});

  /// loss * scale (differentiable).
  Tensor scale(const Tensor& loss) const;
  /// Divides every defined gradient of `params` by the scale in place; true when any
  /// gradient holds inf or NaN (then the step must be skipped, on every rank).
  bool unscale_(const std::vector<Tensor>& params) const;
  /// After a step (or a skipped one): backs off on `found_inf`, else counts towards growth.
  void update(bool found_inf);

  double scale_value() const { return state_.scale; }

  /// What a checkpoint holds to continue exactly.
  struct State {
    double scale = 65536.0;
    int64_t growth_tracker = 0;  // clean steps since the last change of the scale
    bool operator==(const State&) const = default;
  };
  State state() const { return state_; }
  /// Restores a saved state (checked: a positive, finite scale and tracker >= 0).
  void set_state(const State& state);

 private:
  LossScalerOptions options_;
  State state_;
};

/// True when every element of `t` is finite (checked in f64, so it cannot overflow).
bool all_finite(const Tensor& t);

}  // namespace strata::optim
