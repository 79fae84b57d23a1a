// Conv2d and ConvTranspose2d layers (NCHW) over the ops in core/ops/conv.h.
#pragma once

#include <array>

#include "core/nn/module.h"
#include "core/random.h"

namespace strata::nn {

struct Conv2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::array<int64_t, 2> kernel_size{0, 0};
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d : public Layer {
 public:
  /// weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * kH * kW,
  /// as torch's default (kaiming_uniform_ with a = sqrt(5)).
  Conv2d(const Conv2dOptions& options, Generator& gen);
  /// x (N, in_channels, H, W) -> (N, out_channels, H_out, W_out).
  Tensor forward(const Tensor& x) override;

  const Conv2dOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }  // (out, in/groups, kH, kW)
  const Tensor& bias() const { return bias_; }      // (out) or undefined

 private:
  Conv2dOptions options_;
  Tensor weight_;
  Tensor bias_;
};

struct ConvTranspose2dOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::array<int64_t, 2> kernel_size{0, 0};
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> output_padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

class ConvTranspose2d : public Layer {
 public:
  /// As Conv2d's init, with torch's fan_in of the transposed weight: out/groups * kH * kW.
  ConvTranspose2d(const ConvTranspose2dOptions& options, Generator& gen);
  /// x (N, in_channels, H, W) -> (N, out_channels, H_out, W_out).
  Tensor forward(const Tensor& x) override;

  const ConvTranspose2dOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }  // (in, out/groups, kH, kW)
  const Tensor& bias() const { return bias_; }      // (out) or undefined

 private:
  ConvTranspose2dOptions options_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace strata::nn
