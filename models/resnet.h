// ResNets for CIFAR-sized input (He et al. 2016, section 4.2): 6n+2 layers, widths 16/32/64.
// Downsampling shortcuts are 1x1 convolutions with batch norm (option B).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/nn/container.h"
#include "core/nn/conv.h"
#include "core/nn/linear.h"
#include "core/nn/norm.h"

namespace strata::models {

/// Makes the batch norm over `channels` features; empty means nn::BatchNorm2d. Data
/// parallelism passes one that makes dist::SyncBatchNorm (the same parameter and buffer names).
using NormFactory = std::function<std::shared_ptr<nn::BatchNorm>(int64_t channels)>;

/// A k x k convolution without bias, padding k/2, Kaiming-normal (fan_out, ReLU) initialised:
/// the convolution of every ResNet here (torchvision's init).
std::shared_ptr<nn::Conv2d> resnet_conv(int64_t in, int64_t out, int64_t k, int64_t stride,
                                        Generator& gen);
/// The batch norm over `channels`: norm(channels), or nn::BatchNorm2d when norm is empty.
std::shared_ptr<nn::BatchNorm> resnet_norm(int64_t channels, const NormFactory& norm);

class BasicBlock : public nn::Layer {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride, Generator& gen, const NormFactory& norm = {});
  /// x (N, in, H, W) -> (N, out, H/stride, W/stride).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_;
  std::shared_ptr<nn::Sequential> shortcut_;  // empty: identity
};

class CifarResNet : public nn::Layer {
 public:
  /// depth = 6n + 2 (20, 32, 44, 56, 110).
  CifarResNet(int64_t depth, int64_t classes, Generator& gen, const NormFactory& norm = {});
  /// x (N, 3, 32, 32) -> logits (N, classes).
  Tensor forward(const Tensor& x) override;
  /// The network as a sequence of blocks for pipeline stages (distributed/pipeline/
  /// partition.h): the stem (conv1, bn1, ReLU), every BasicBlock of layer1..3 in order, and
  /// the head (global average pool, fc). Chained, they compute forward(); they share this
  /// model's layers.
  std::vector<std::shared_ptr<nn::Layer>> pipeline_blocks() const;

 private:
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm> bn1_;
  std::shared_ptr<nn::Sequential> layer1_, layer2_, layer3_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace strata::models
