// Dynamic loss scaling. Finiteness is checked through sum(|g|) in f64: any inf or NaN makes
// it non-finite, and f64 cannot overflow on finite f32, f16 or bf16 values.
#include "core/optim/loss_scaler.h"

#include <cmath>

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/optim/clip.h"

namespace strata::optim {

LossScaler::LossScaler(const LossScalerOptions& options) : options_(options) {
  check(std::isfinite(options.init_scale) && options.init_scale > 0,
        "[LossScaler] init_scale must be positive and finite, got ", options.init_scale);
  check(options.growth_factor > 1, "[LossScaler] growth_factor must be > 1, got ",
        options.growth_factor);
  check(options.backoff_factor > 0 && options.backoff_factor < 1,
        "[LossScaler] backoff_factor must be in (0, 1), got ", options.backoff_factor);
  check(options.growth_interval > 0, "[LossScaler] growth_interval must be positive, got ",
        options.growth_interval);
  state_.scale = options.init_scale;
}

Tensor LossScaler::scale(const Tensor& loss) const { return loss * state_.scale; }

bool all_finite(const Tensor& t) {
  NoGradGuard guard;
  return std::isfinite(sum(abs(t.to(DType::f64))).item());
}

bool LossScaler::unscale_(const std::vector<Tensor>& params) const {
  NoGradGuard guard;
  bool found_inf = false;
  // CUDA gradients: max|g| per gradient on the device (NaN propagates, nothing overflows),
  // read back in one copy; a read per parameter would make the host wait for the GPU each time.
  std::vector<Tensor> device_peaks;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    Tensor g = p.grad();
    if (g.device().is_cuda()) {
      if (g.numel() > 0) device_peaks.push_back(max(abs(g)).to(DType::f64));
    } else {
      found_inf = found_inf || !all_finite(g);
    }
    mul_(g, 1.0 / state_.scale);
  }
  return found_inf || !std::isfinite(read_device_parts(std::move(device_peaks), true));
}

void LossScaler::update(bool found_inf) {
  if (found_inf) {
    state_.scale *= options_.backoff_factor;
    state_.growth_tracker = 0;
    return;
  }
  if (++state_.growth_tracker == options_.growth_interval) {
    state_.scale *= options_.growth_factor;
    state_.growth_tracker = 0;
  }
}

void LossScaler::set_state(const State& state) {
  check(std::isfinite(state.scale) && state.scale > 0 && state.growth_tracker >= 0,
        "[LossScaler] a saved state needs a positive finite scale and a tracker >= 0; got "
        "scale ",
        state.scale, ", tracker ", state.growth_tracker);
  state_ = state;
}

}  // namespace strata::optim
