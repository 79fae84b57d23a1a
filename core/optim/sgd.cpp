// SGD and LARS: hyper-parameter checks and the per-parameter call into the fused kernel.
#include "core/optim/sgd.h"

#include <cmath>

#include "core/backend/cpu/optim.h"
#include "core/backend/cuda/optim.h"
#include "core/ops/dispatch.h"

namespace strata::optim {

SGD::SGD(std::vector<Tensor> params, const SGDOptions& opts)
    : SGD(std::vector<ParamGroup>{ParamGroup{std::move(params), {}, {}, {}}}, opts) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& d)
    : Optimizer(std::move(groups), d.lr, d.weight_decay,
                {{"momentum", d.momentum},
                 {"dampening", d.dampening},
                 {"nesterov", d.nesterov ? 1.0 : 0.0}}) {
  validate_all();
}

void SGD::validate(size_t g) const {
  double momentum = option(g, "momentum"), dampening = option(g, "dampening");
  check(momentum >= 0, "[SGD] momentum of group ", g, " must be >= 0, got ", momentum);
  check(option(g, "nesterov") == 0 || (momentum > 0 && dampening == 0), "[SGD] nesterov in group ",
        g, " needs momentum > 0 and dampening == 0, got momentum ", momentum, " and dampening ",
        dampening);
}

cpu::SgdHyper SGD::hyper(size_t g) const {
  cpu::SgdHyper h;
  h.lr = *groups()[g].lr;
  h.weight_decay = *groups()[g].weight_decay;
  h.momentum = option(g, "momentum");
  h.dampening = option(g, "dampening");
  h.nesterov = option(g, "nesterov") != 0;
  return h;
}

void SGD::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  cpu::SgdHyper h = hyper(g);
  Tensor buf;
  if (h.momentum != 0) buf = slot(g, i, "momentum_buffer", 0, &h.first);
  if (on_cuda(param)) return cuda::sgd_step({param}, {grad}, {buf}, h);
  cpu::sgd_step(param, grad, buf, h);
}

void SGD::update_group(size_t g, const std::vector<Item>& items) {
  FusedBatches<3> batches;  // by whether the momentum buffer is new (its first step)
  const bool momentum = option(g, "momentum") != 0;
  for (const Item& it : update_host_items(g, items)) {
    bool first = false;
    Tensor buf = momentum ? slot(g, it.index, "momentum_buffer", 0, &first) : Tensor();
    batches.add(first ? 1 : 0, {it.param, it.grad, buf});
  }
  batches.launch([&](double first, const FusedBatches<3>::Lists& l) {
    cpu::SgdHyper h = hyper(g);
    h.first = first != 0;
    cuda::sgd_step(l[0], l[1], l[2], h);
  });
}

LARS::LARS(std::vector<Tensor> params, const LARSOptions& opts)
    : LARS(std::vector<ParamGroup>{ParamGroup{std::move(params), {}, {}, {}}}, opts) {}

LARS::LARS(std::vector<ParamGroup> groups, const LARSOptions& d)
    : Optimizer(
          std::move(groups), d.lr, d.weight_decay,
          {{"momentum", d.momentum}, {"trust_coefficient", d.trust_coefficient}, {"eps", d.eps}}) {
  validate_all();
}

void LARS::validate(size_t g) const {
  check(option(g, "momentum") >= 0, "[LARS] momentum of group ", g, " must be >= 0, got ",
        option(g, "momentum"));
  check(option(g, "trust_coefficient") > 0, "[LARS] trust_coefficient of group ", g,
        " must be > 0, got ", option(g, "trust_coefficient"));
  check(option(g, "eps") >= 0, "[LARS] eps of group ", g, " must be >= 0, got ", option(g, "eps"));
}

void LARS::update(size_t g, size_t i, const Tensor& param, const Tensor& grad) {
  check(!on_cuda(param), "[LARS] has no CUDA kernel yet (parameter ", i, " of group ", g, ": ",
        param.desc(), "); use SGD, Adam or AdamW on CUDA, or train on the CPU (device: cpu)");
  cpu::SgdHyper h;
  h.lr = *groups()[g].lr;
  h.weight_decay = *groups()[g].weight_decay;
  h.momentum = option(g, "momentum");
  const double w_norm = std::sqrt(cpu::sum_abs_pow(param, 2));
  const double g_norm = std::sqrt(cpu::sum_abs_pow(grad, 2));
  if (w_norm > 0 && g_norm > 0) {
    h.grad_scale = w_norm / (g_norm + h.weight_decay * w_norm + option(g, "eps")) *
                   option(g, "trust_coefficient");
  }
  Tensor buf;
  if (h.momentum != 0) buf = slot(g, i, "momentum_buffer", 0, &h.first);
  cpu::sgd_step(param, grad, buf, h);
}

}  // namespace strata::optim
