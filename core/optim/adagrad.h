// AdaGrad (torch.optim.Adagrad).
#pragma once

#include "core/backend/cpu/optim.h"
#include "core/optim/optimizer.h"

namespace strata::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
};

/// d = g + wd*w; sum += d^2; w -= lr/(1 + (t-1)*lr_decay) * d / (sqrt(sum) + eps).
/// Group options: lr_decay, initial_accumulator_value, eps.
class Adagrad : public Optimizer {
 public:
  explicit Adagrad(std::vector<Tensor> params, const AdagradOptions& opts = {});
  Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& defaults);
  std::string name() const override { return "Adagrad"; }

 protected:
  void update(size_t group, size_t index, const Tensor& param, const Tensor& grad) override;
  void update_group(size_t group, const std::vector<Item>& items) override;
  void validate(size_t group) const override;
  std::vector<std::string> slot_names() const override { return {"sum", "step"}; }

 private:
  cpu::AdagradHyper hyper(size_t g, double t) const;  // group g's at step t
};

}  // namespace strata::optim
