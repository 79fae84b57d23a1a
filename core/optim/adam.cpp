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

cpu::AdamHyper Adam::hyper(size_t g, double t) const {
  cpu::AdamHyper h;
  h.lr = *groups()[g].lr;
  h.weight_decay = *groups()[g].weight_decay;
  h.beta1 = option(g, "beta1");
  h.beta2 = option(g, "beta2");
  h.eps = option(g, "eps");
  h.amsgrad = option(g, "amsgrad") != 0;
  h.decoupled = decoupled_;
  h.bias1 = 1 - std::pow(h.beta1, t);
  h.bias2_sqrt = std::sqrt(1 - std::pow(h.beta2, t));
  return h;
}

std::array<Tensor, 3> Adam::slots(size_t g, size_t i) {
  const bool amsgrad = option(g, "amsgrad") != 0;
  return {slot(g, i, "exp_avg"), slot(g, i, "exp_avg_sq"),
          amsgrad ? slot(g, i, "max_exp_avg_sq") : Tensor()};
}

void Adam::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  const cpu::AdamHyper h = hyper(g, bump_counter(g, i, "step"));
  const auto [m, v, mx] = slots(g, i);
  if (on_cuda(param)) return cuda::adam_step({param}, {grad}, {m}, {v}, {mx}, h);
  cpu::adam_step(param, grad, m, v, mx, h);
}

void Adam::update_group(size_t g, const std::vector<Item>& items) {
  FusedBatches<5> batches;  // by step count, which sets the bias corrections
  for (const Item& it : update_host_items(g, items)) {
    const double t = bump_counter(g, it.index, "step");
    const auto [m, v, mx] = slots(g, it.index);
    batches.add(t, {it.param, it.grad, m, v, mx});
  }
  batches.launch([&](double t, const FusedBatches<5>::Lists& l) {
    cuda::adam_step(l[0], l[1], l[2], l[3], l[4], hyper(g, t));
  });
}

}  // namespace strata::optim
