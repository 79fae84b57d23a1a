// RMSprop: picks the state slots the variant needs, then one fused pass.
#include "core/optim/rmsprop.h"

#include "core/backend/cpu/optim.h"
#include "core/backend/cuda/optim.h"
#include "core/ops/dispatch.h"

namespace strata::optim {

RMSprop::RMSprop(std::vector<Tensor> params, const RMSpropOptions& opts)
    : RMSprop(std::vector<ParamGroup>{ParamGroup{std::move(params), {}, {}, {}}}, opts) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& d)
    : Optimizer(std::move(groups), d.lr, d.weight_decay,
                {{"alpha", d.alpha},
                 {"eps", d.eps},
                 {"momentum", d.momentum},
                 {"centered", d.centered ? 1.0 : 0.0}}) {
  validate_all();
}

void RMSprop::validate(size_t g) const {
  for (const char* k : {"alpha", "eps", "momentum"}) {
    check(option(g, k) >= 0, "[RMSprop] ", k, " of group ", g, " must be >= 0, got ", option(g, k));
  }
}

void RMSprop::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  cpu::RmspropHyper h;
  h.lr = *groups()[g].lr;
  h.weight_decay = *groups()[g].weight_decay;
  h.alpha = option(g, "alpha");
  h.eps = option(g, "eps");
  h.momentum = option(g, "momentum");
  h.centered = option(g, "centered") != 0;
  Tensor& sq = slot(g, i, "square_avg");
  Tensor avg = h.centered ? slot(g, i, "grad_avg") : Tensor();
  Tensor buf = h.momentum > 0 ? slot(g, i, "momentum_buffer") : Tensor();
  if (on_cuda(param)) return cuda::rmsprop_step({param}, {grad}, {sq}, {avg}, {buf}, h);
  cpu::rmsprop_step(param, grad, sq, avg, buf, h);
}

}  // namespace strata::optim
