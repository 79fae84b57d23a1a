// Parameter initialisers with torch.nn.init's formulas. Each fills a tensor in place from
// an explicit Generator (there is no global RNG) and returns the same handle.
#pragma once

#include <utility>

#include "core/random.h"
#include "core/tensor.h"

namespace strata::nn::init {

enum class FanMode { fan_in, fan_out };
enum class Nonlinearity { linear, conv, sigmoid, tanh, relu, leaky_relu, selu };

/// torch.nn.init.calculate_gain: 1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu,
/// sqrt(2 / (1 + slope^2)) for leaky_relu (`param` is the slope), 3/4 for selu.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);
/// (fan_in, fan_out) of a weight with >= 2 dims: size(1) and size(0) times the receptive field.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

/// U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a).
Tensor kaiming_uniform_(Tensor t, Generator& gen, double a = 0, FanMode mode = FanMode::fan_in,
                        Nonlinearity nonlinearity = Nonlinearity::leaky_relu);
/// N(0, std^2) with std = gain / sqrt(fan).
Tensor kaiming_normal_(Tensor t, Generator& gen, double a = 0, FanMode mode = FanMode::fan_in,
                       Nonlinearity nonlinearity = Nonlinearity::leaky_relu);
/// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(Tensor t, Generator& gen, double gain = 1.0);
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(Tensor t, Generator& gen, double gain = 1.0);
/// U(lo, hi).
Tensor uniform_(Tensor t, Generator& gen, double lo = 0.0, double hi = 1.0);
/// N(mean, std^2).
Tensor normal_(Tensor t, Generator& gen, double mean = 0.0, double std = 1.0);
/// N(mean, std^2) truncated to [a, b] (absolute bounds, as torch).
Tensor trunc_normal_(Tensor t, Generator& gen, double mean = 0.0, double std = 1.0, double a = -2.0,
                     double b = 2.0);
Tensor constant_(Tensor t, double value);
Tensor zeros_(Tensor t);
Tensor ones_(Tensor t);

}  // namespace strata::nn::init
