// torch.nn.init's formulas on strata's Philox samplers.
#include "core/nn/init.h"

#include <cmath>

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"

namespace strata::nn::init {
namespace {

void check_target(const char* op, const Tensor& t) {
  check(t.defined(), "[", op, "] tensor is undefined");
  check(is_floating(t.dtype()), "[", op, "] needs a floating tensor, got ", t.desc());
}

/// Writes `values` into t without recording (initialisers act on leaves that require grad).
Tensor assign(Tensor t, const Tensor& values) {
  NoGradGuard no_grad;
  copy_(t, values.to(t.device()));
  return t;
}

double kaiming_std(const char* op, const Tensor& t, double a, FanMode mode, Nonlinearity nl) {
  check_target(op, t);
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  int64_t fan = mode == FanMode::fan_in ? fan_in : fan_out;
  check(fan > 0, "[", op, "] cannot initialise a tensor with zero elements ", t.desc());
  return calculate_gain(nl, a) / std::sqrt(static_cast<double>(fan));
}

double xavier_std(const char* op, const Tensor& t, double gain) {
  check_target(op, t);
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  check(fan_in + fan_out > 0, "[", op, "] cannot initialise a tensor with zero elements ",
        t.desc());
  return gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::conv:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu:
      return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::selu:
      return 3.0 / 4.0;
  }
  check_internal(false, "unknown nonlinearity");
  return 1.0;
}

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  check(t.dim() >= 2, "[init] fan in and fan out need a tensor with at least 2 dimensions, got ",
        t.desc());
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor kaiming_uniform_(Tensor t, Generator& gen, double a, FanMode mode, Nonlinearity nl) {
  double bound = std::sqrt(3.0) * kaiming_std("kaiming_uniform_", t, a, mode, nl);
  return assign(t, rand(t.shape(), gen, t.dtype(), -bound, bound));
}

Tensor kaiming_normal_(Tensor t, Generator& gen, double a, FanMode mode, Nonlinearity nl) {
  double std = kaiming_std("kaiming_normal_", t, a, mode, nl);
  return assign(t, randn(t.shape(), gen, t.dtype(), 0.0, std));
}

Tensor xavier_uniform_(Tensor t, Generator& gen, double gain) {
  double bound = std::sqrt(3.0) * xavier_std("xavier_uniform_", t, gain);
  return assign(t, rand(t.shape(), gen, t.dtype(), -bound, bound));
}

Tensor xavier_normal_(Tensor t, Generator& gen, double gain) {
  double std = xavier_std("xavier_normal_", t, gain);
  return assign(t, randn(t.shape(), gen, t.dtype(), 0.0, std));
}

Tensor uniform_(Tensor t, Generator& gen, double lo, double hi) {
  check_target("uniform_", t);
  check(lo <= hi, "[uniform_] needs lo <= hi, got lo=", lo, " hi=", hi);
  return assign(t, rand(t.shape(), gen, t.dtype(), lo, hi));
}

Tensor normal_(Tensor t, Generator& gen, double mean, double std) {
  check_target("normal_", t);
  check(std >= 0, "[normal_] std must be non-negative, got ", std);
  return assign(t, randn(t.shape(), gen, t.dtype(), mean, std));
}

Tensor trunc_normal_(Tensor t, Generator& gen, double mean, double std, double a, double b) {
  check_target("trunc_normal_", t);
  return assign(t, trunc_normal(t.shape(), gen, mean, std, a, b, t.dtype()));
}

Tensor constant_(Tensor t, double value) {
  check(t.defined(), "[constant_] tensor is undefined");
  fill_(t, value);
  return t;
}

Tensor zeros_(Tensor t) { return constant_(t, 0.0); }
Tensor ones_(Tensor t) { return constant_(t, 1.0); }

}  // namespace strata::nn::init
