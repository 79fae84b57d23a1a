// Adam and AdamW (torch.optim.Adam / AdamW, with optional AMSGrad).
#pragma once

#include "core/backend/cpu/optim.h"
#include "core/optim/optimizer.h"

namespace strata::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};

/// AdamW's defaults differ only in weight decay, as in torch.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

/// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2 (v_max = max(v_max, v) with amsgrad);
/// w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). Adam adds wd*w to g; AdamW first
/// multiplies w by 1 - lr*wd. Group options: beta1, beta2, eps, amsgrad (0/1).
class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Tensor> params, const AdamOptions& opts = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults);
  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }

 protected:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults, bool decoupled);
  void update(size_t group, size_t index, const Tensor& param, const Tensor& grad) override;
  void update_group(size_t group, const std::vector<Item>& items) override;
  void validate(size_t group) const override;
  std::vector<std::string> slot_names() const override {
    return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"};
  }

 private:
  /// Group g's hyper-parameters at step t (its bias corrections).
  cpu::AdamHyper hyper(size_t g, double t) const;
  /// exp_avg, exp_avg_sq and (with amsgrad, else undefined) max_exp_avg_sq of a parameter.
  std::array<Tensor, 3> slots(size_t g, size_t i);
  bool decoupled_ = false;
};

class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, const AdamWOptions& opts = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults);
};

}  // namespace strata::optim
