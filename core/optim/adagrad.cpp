// AdaGrad: the decayed learning rate per parameter step, then one fused pass.
#include "core/optim/adagrad.h"

#include "core/backend/cpu/optim.h"
#include "core/backend/cuda/optim.h"
#include "core/ops/dispatch.h"

namespace strata::optim {

Adagrad::Adagrad(std::vector<Tensor> params, const AdagradOptions& opts)
    : Adagrad(std::vector<ParamGroup>{ParamGroup{std::move(params), {}, {}, {}}}, opts) {}

Adagrad::Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& d)
    : Optimizer(std::move(groups), d.lr, d.weight_decay,
                {{"lr_decay", d.lr_decay},
                 {"initial_accumulator_value", d.initial_accumulator_value},
                 {"eps", d.eps}}) {
  validate_all();
}

void Adagrad::validate(size_t g) const {
  for (const char* k : {"lr_decay", "initial_accumulator_value", "eps"}) {
    check(option(g, k) >= 0, "[Adagrad] ", k, " of group ", g, " must be >= 0, got ", option(g, k));
  }
}

cpu::AdagradHyper Adagrad::hyper(size_t g, double t) const {
  cpu::AdagradHyper h;
  h.clr = *groups()[g].lr / (1 + (t - 1) * option(g, "lr_decay"));
  h.eps = option(g, "eps");
  h.weight_decay = *groups()[g].weight_decay;
  return h;
}

void Adagrad::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  const cpu::AdagradHyper h = hyper(g, bump_counter(g, i, "step"));
  Tensor& sum = slot(g, i, "sum", option(g, "initial_accumulator_value"));
  if (on_cuda(param)) return cuda::adagrad_step({param}, {grad}, {sum}, h);
  cpu::adagrad_step(param, grad, sum, h);
}

void Adagrad::update_group(size_t g, const std::vector<Item>& items) {
  FusedBatches<3> batches;  // by step count, which sets the decayed learning rate
  for (const Item& it : update_host_items(g, items)) {
    const double t = bump_counter(g, it.index, "step");
    batches.add(
        t, {it.param, it.grad, slot(g, it.index, "sum", option(g, "initial_accumulator_value"))});
  }
  batches.launch([&](double t, const FusedBatches<3>::Lists& l) {
    cuda::adagrad_step(l[0], l[1], l[2], hyper(g, t));
  });
}

}  // namespace strata::optim
