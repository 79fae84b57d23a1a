// ResNets for CIFAR-sized input (He et al. 2016, section 4.2): 6n+2 layers, widths 16/32/64.
// Downsampling shortcuts are 1x1 convolutions with batch norm (option B).
#pragma once

#include <memory>

#include "core/nn/container.h"
#include "core/nn/conv.h"
#include "core/nn/linear.h"
#include "core/nn/norm.h"

namespace strata::models {

class BasicBlock : public nn::Layer {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride, Generator& gen);
  /// x (N, in, H, W) -> (N, out, H/stride, W/stride).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<nn::Sequential> shortcut_;  // empty: identity
};

class CifarResNet : public nn::Layer {
 public:
  /// depth = 6n + 2 (20, 32, 44, 56, 110).
  CifarResNet(int64_t depth, int64_t classes, Generator& gen);
  /// x (N, 3, 32, 32) -> logits (N, classes).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  std::shared_ptr<nn::Sequential> layer1_, layer2_, layer3_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace strata::models
