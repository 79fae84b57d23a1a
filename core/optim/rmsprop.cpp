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

cpu::RmspropHyper RMSprop::hyper(size_t g) const {
  cpu::RmspropHyper h;
  h.lr = *groups()[g].lr;
  h.weight_decay = *groups()[g].weight_decay;
  h.alpha = option(g, "alpha");
  h.eps = option(g, "eps");
  h.momentum = option(g, "momentum");
  h.centered = option(g, "centered") != 0;
  return h;
}

std::array<Tensor, 3> RMSprop::slots(size_t g, size_t i) {
  const bool centered = option(g, "centered") != 0, momentum = option(g, "momentum") > 0;
  return {slot(g, i, "square_avg"), centered ? slot(g, i, "grad_avg") : Tensor(),
          momentum ? slot(g, i, "momentum_buffer") : Tensor()};
}

void RMSprop::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  const cpu::RmspropHyper h = hyper(g);
  const auto [sq, avg, buf] = slots(g, i);
  if (on_cuda(param)) return cuda::rmsprop_step({param}, {grad}, {sq}, {avg}, {buf}, h);
  cpu::rmsprop_step(param, grad, sq, avg, buf, h);
}

void RMSprop::update_group(size_t g, const std::vector<Item>& items) {
  FusedBatches<5> batches;  // the hyper-parameters are the group's: one batch per device/dtype
  for (const Item& it : update_host_items(g, items)) {
    const auto [sq, avg, buf] = slots(g, it.index);
    batches.add(0, {it.param, it.grad, sq, avg, buf});
  }
  batches.launch([&](double, const FusedBatches<5>::Lists& l) {
    cuda::rmsprop_step(l[0], l[1], l[2], l[3], l[4], hyper(g));
  });
}

}  // namespace strata::optim
