// SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD), and LARS
// (layer-wise adaptive rate scaling on top of momentum SGD, in torchlars' form).
#pragma once

#include "core/backend/cpu/optim.h"
#include "core/optim/optimizer.h"

namespace strata::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
  double weight_decay = 0;
};

/// d = g + wd*w; buf = momentum*buf + (1-dampening)*d (buf = d on the first step);
/// d = nesterov ? d + momentum*buf : buf; w -= lr*d. Group options: momentum, dampening,
/// nesterov (0/1).
class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, const SGDOptions& opts = {});
  SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults);
  std::string name() const override { return "SGD"; }

 protected:
  void update(size_t group, size_t index, const Tensor& param, const Tensor& grad) override;
  void update_group(size_t group, const std::vector<Item>& items) override;
  void validate(size_t group) const override;
  std::vector<std::string> slot_names() const override { return {"momentum_buffer"}; }

 private:
  cpu::SgdHyper hyper(size_t g) const;  // group g's, for a buffer that is not new
};

struct LARSOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0;
  double trust_coefficient = 0.001;
  double eps = 1e-8;
};

/// LARS (You et al. 2017) as torchlars applies it: per parameter,
///   trust = ||w|| / (||g|| + wd*||w|| + eps) * trust_coefficient   (1 if ||w|| or ||g|| is 0)
///   d = (g + wd*w) * trust; buf = momentum*buf + d (buf = d first); w -= lr*buf.
/// Group options: momentum, trust_coefficient, eps.
class LARS : public Optimizer {
 public:
  explicit LARS(std::vector<Tensor> params, const LARSOptions& opts = {});
  LARS(std::vector<ParamGroup> groups, const LARSOptions& defaults);
  std::string name() const override { return "LARS"; }

 protected:
  void update(size_t group, size_t index, const Tensor& param, const Tensor& grad) override;
  void validate(size_t group) const override;
  std::vector<std::string> slot_names() const override { return {"momentum_buffer"}; }
};

}  // namespace strata::optim
