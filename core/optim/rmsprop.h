// RMSprop (torch.optim.RMSprop), plain, centered and with momentum.
#pragma once

#include "core/backend/cpu/optim.h"
#include "core/optim/optimizer.h"

namespace strata::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
};

/// d = g + wd*w; s = alpha*s + (1-alpha)*d^2; avg = sqrt(s - a^2) + eps with
/// a = alpha*a + (1-alpha)*d when centered, else sqrt(s) + eps; with momentum
/// buf = momentum*buf + d/avg and w -= lr*buf, else w -= lr*d/avg.
/// Group options: alpha, eps, momentum, centered (0/1).
class RMSprop : public Optimizer {
 public:
  explicit RMSprop(std::vector<Tensor> params, const RMSpropOptions& opts = {});
  RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& defaults);
  std::string name() const override { return "RMSprop"; }

 protected:
  void update(size_t group, size_t index, const Tensor& param, const Tensor& grad) override;
  void update_group(size_t group, const std::vector<Item>& items) override;
  void validate(size_t group) const override;
  std::vector<std::string> slot_names() const override {
    return {"square_avg", "grad_avg", "momentum_buffer"};
  }

 private:
  cpu::RmspropHyper hyper(size_t g) const;
  /// square_avg, grad_avg (when centered) and momentum_buffer (with momentum) of a parameter.
  std::array<Tensor, 3> slots(size_t g, size_t i);
};

}  // namespace strata::optim
