// torchvision's ImageNet ResNets (18/34/50/101/152; v1.5: the stride sits on the 3x3 conv of
// a Bottleneck) with torchvision's parameter names and initialisation, for the ResNet-50
// benchmark of issue 3 and checkpoints that map one-to-one onto torchvision's state_dict.
#pragma once

#include <array>
#include <memory>

#include "models/resnet.h"

namespace strata::models {

/// A torchvision block: BasicBlock (two 3x3 convs, expansion 1) or Bottleneck (1x1, 3x3 with
/// the stride, 1x1; expansion 4). Children conv1, bn1, conv2, bn2[, conv3, bn3][, downsample].
class ImageNetBlock : public nn::Layer {
 public:
  ImageNetBlock(int64_t in, int64_t planes, int64_t stride, bool bottleneck, Generator& gen,
                const NormFactory& norm = {});
  /// x (N, in, H, W) -> (N, planes * expansion, H/stride, W/stride).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;  // conv3_: Bottleneck only
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_, bn3_;
  std::shared_ptr<nn::Sequential> downsample_;  // null: identity shortcut
};

class ImageNetResNet : public nn::Layer {
 public:
  /// depth 18, 34 (BasicBlock) or 50, 101, 152 (Bottleneck); as torchvision.models.resnetN
  /// (zero_init_residual off): convs kaiming_normal (fan_out, relu), BN weight 1 bias 0,
  /// fc nn.Linear's default.
  ImageNetResNet(int64_t depth, int64_t classes, Generator& gen, const NormFactory& norm = {});
  /// x (N, 3, H, W), H and W >= 32 (224 for ImageNet) -> logits (N, classes).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_;  // 7x7, stride 2
  std::shared_ptr<nn::BatchNorm> bn1_;
  std::array<std::shared_ptr<nn::Sequential>, 4> layers_;  // layer1..layer4
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace strata::models
