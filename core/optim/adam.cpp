// Adam and AdamW: per-parameter step counters and bias corrections, then one fused pass.
#include "core/optim/adam.h"

#include <cmath>

#include "core/backend/cpu/optim.h"
#include "core/backend/cuda/optim.h"
#include "core/ops/dispatch.h"

namespace strata::optim {
namespace {

std::map<std::string, double> adam_defaults(const AdamOptions& d) {
  return {{"beta1", d.beta1}, {"beta2", d.beta2}, {"eps", d.eps}, {"amsgrad", d.amsgrad ? 1. : 0.}};
}

}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& opts)
    : Adam(std::vector<ParamGroup>{ParamGroup{std::move(params), {}, {}, {}}}, opts, false) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults)
    : Adam(std::move(groups), defaults, false) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& d, bool decoupled)
    : Optimizer(std::move(groups), d.lr, d.weight_decay, adam_defaults(d)), decoupled_(decoupled) {
  validate_all();
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& opts)
    : Adam(std::vector<ParamGroup>{ParamGroup{std::move(params), {}, {}, {}}}, opts, true) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults)
    : Adam(std::move(groups), defaults, true) {}

void Adam::validate(size_t g) const {
  for (const char* b : {"beta1", "beta2"}) {
    double v = option(g, b);
    check(v >= 0 && v < 1, "[", name(), "] ", b, " of group ", g, " must be in [0, 1), got ", v);
  }
  check(option(g, "eps") >= 0, "[", name(), "] eps of group ", g, " must be >= 0, got ",
        option(g, "eps"));
}

void Adam::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  cpu::AdamHyper h;
  h.lr = *groups()[g].lr;
  h.weight_decay = *groups()[g].weight_decay;
  h.beta1 = option(g, "beta1");
  h.beta2 = option(g, "beta2");
  h.eps = option(g, "eps");
  h.amsgrad = option(g, "amsgrad") != 0;
  h.decoupled = decoupled_;
  const double t = bump_counter(g, i, "step");
  h.bias1 = 1 - std::pow(h.beta1, t);
  h.bias2_sqrt = std::sqrt(1 - std::pow(h.beta2, t));
  Tensor& m = slot(g, i, "exp_avg");
  Tensor& v = slot(g, i, "exp_avg_sq");
  Tensor mx = h.amsgrad ? slot(g, i, "max_exp_avg_sq") : Tensor();
  if (on_cuda(param)) return cuda::adam_step({param}, {grad}, {m}, {v}, {mx}, h);
  cpu::adam_step(param, grad, m, v, mx, h);
}

}  // namespace strata::optim
