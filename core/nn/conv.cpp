// Convolution layers: option checks, torch's default init, forward through the conv ops.
#include "core/nn/conv.h"

#include <cmath>

#include "core/nn/init.h"
#include "core/ops/conv.h"

namespace strata::nn {
namespace {

/// The checks shared by both layers; `layer` names the class in messages.
template <class Options>
void check_conv_options(const char* layer, const Options& o) {
  check(o.in_channels > 0, "[", layer, "] in_channels must be positive, got ", o.in_channels);
  check(o.out_channels > 0, "[", layer, "] out_channels must be positive, got ", o.out_channels);
  check(o.groups > 0, "[", layer, "] groups must be positive, got ", o.groups);
  check(o.in_channels % o.groups == 0, "[", layer, "] in_channels (", o.in_channels,
        ") must be divisible by groups (", o.groups, ")");
  check(o.out_channels % o.groups == 0, "[", layer, "] out_channels (", o.out_channels,
        ") must be divisible by groups (", o.groups, ")");
  for (int i = 0; i < 2; ++i) {
    check(o.kernel_size[i] > 0, "[", layer, "] kernel_size must be positive, got (",
          o.kernel_size[0], ", ", o.kernel_size[1], ")");
    check(o.stride[i] > 0, "[", layer, "] stride must be positive, got (", o.stride[0], ", ",
          o.stride[1], ")");
    check(o.padding[i] >= 0, "[", layer, "] padding must be non-negative, got (", o.padding[0],
          ", ", o.padding[1], ")");
    check(o.dilation[i] > 0, "[", layer, "] dilation must be positive, got (", o.dilation[0], ", ",
          o.dilation[1], ")");
  }
}

void check_conv_input(const char* layer, const Tensor& x, int64_t channels) {
  check(x.dim() == 4 && x.size(1) == channels, "[", layer, "] expected input (N, ", channels,
        ", H, W), got ", x.desc());
}

/// torch's _ConvNd.reset_parameters: kaiming_uniform_(a = sqrt(5)), bias U(+-1/sqrt(fan_in)).
void reset_conv(Tensor& weight, Tensor& bias, Generator& gen) {
  init::kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in_and_fan_out(weight).first));
    init::uniform_(bias, gen, -bound, bound);
  }
}

}  // namespace

Conv2d::Conv2d(const Conv2dOptions& options, Generator& gen) : options_(options) {
  check_conv_options("Conv2d", options);
  const auto& k = options.kernel_size;
  weight_ = register_parameter(
      "weight", empty({options.out_channels, options.in_channels / options.groups, k[0], k[1]}));
  if (options.bias) bias_ = register_parameter("bias", empty({options.out_channels}));
  reset_conv(weight_, bias_, gen);
}

Tensor Conv2d::forward(const Tensor& x) {
  check_conv_input("Conv2d", x, options_.in_channels);
  Conv2dParams p;
  p.stride = options_.stride;
  p.padding = options_.padding;
  p.dilation = options_.dilation;
  p.groups = options_.groups;
  return conv2d(x, weight_, bias_, p);
}

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& options, Generator& gen)
    : options_(options) {
  check_conv_options("ConvTranspose2d", options);
  for (int i = 0; i < 2; ++i) {
    const auto& op = options.output_padding;
    check(op[i] >= 0 && (op[i] < options.stride[i] || op[i] < options.dilation[i]),
          "[ConvTranspose2d] output_padding (", op[0], ", ", op[1],
          ") must be non-negative and smaller than either stride or dilation");
  }
  const auto& k = options.kernel_size;
  weight_ = register_parameter(
      "weight", empty({options.in_channels, options.out_channels / options.groups, k[0], k[1]}));
  if (options.bias) bias_ = register_parameter("bias", empty({options.out_channels}));
  reset_conv(weight_, bias_, gen);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  check_conv_input("ConvTranspose2d", x, options_.in_channels);
  Conv2dParams p;
  p.stride = options_.stride;
  p.padding = options_.padding;
  p.dilation = options_.dilation;
  p.groups = options_.groups;
  p.output_padding = options_.output_padding;
  return conv_transpose2d(x, weight_, bias_, p);
}

}  // namespace strata::nn
