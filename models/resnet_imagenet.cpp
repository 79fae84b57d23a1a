// torchvision's ImageNet ResNets: one table of block counts per depth, BasicBlock or
// Bottleneck, the 7x7 stem with 3x3 max pool, four stages, global average pool and fc.
#include "models/resnet_imagenet.h"

#include <string>

#include "core/nn/init.h"
#include "core/ops.h"
#include "core/ops/pool.h"

namespace strata::models {
namespace {

struct Spec {
  int64_t depth;
  bool bottleneck;
  std::array<int64_t, 4> blocks;
};

// torchvision.models.resnet: resnet18 ... resnet152.
constexpr std::array<Spec, 5> kSpecs{{{18, false, {2, 2, 2, 2}},
                                      {34, false, {3, 4, 6, 3}},
                                      {50, true, {3, 4, 6, 3}},
                                      {101, true, {3, 4, 23, 3}},
                                      {152, true, {3, 8, 36, 3}}}};

}  // namespace

ImageNetBlock::ImageNetBlock(int64_t in, int64_t planes, int64_t stride, bool bottleneck,
                             Generator& gen, const NormFactory& norm) {
  const int64_t out = bottleneck ? planes * 4 : planes;
  if (bottleneck) {
    conv1_ = register_module("conv1", resnet_conv(in, planes, 1, 1, gen));
    bn1_ = register_module("bn1", resnet_norm(planes, norm));
    conv2_ = register_module("conv2", resnet_conv(planes, planes, 3, stride, gen));
    bn2_ = register_module("bn2", resnet_norm(planes, norm));
    conv3_ = register_module("conv3", resnet_conv(planes, out, 1, 1, gen));
    bn3_ = register_module("bn3", resnet_norm(out, norm));
  } else {
    conv1_ = register_module("conv1", resnet_conv(in, planes, 3, stride, gen));
    bn1_ = register_module("bn1", resnet_norm(planes, norm));
    conv2_ = register_module("conv2", resnet_conv(planes, planes, 3, 1, gen));
    bn2_ = register_module("bn2", resnet_norm(planes, norm));
  }
  if (stride != 1 || in != out) {
    downsample_ = register_module("downsample", std::make_shared<nn::Sequential>());
    downsample_->push_back(resnet_conv(in, out, 1, stride, gen));
    downsample_->push_back(resnet_norm(out, norm));
  }
}

Tensor ImageNetBlock::forward(const Tensor& x) {
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));  // (N, planes, H', W')
  h = bn2_->forward(conv2_->forward(h));
  if (conv3_) h = bn3_->forward(conv3_->forward(relu(h)));  // (N, 4 planes, H', W')
  return relu(add(h, downsample_ ? downsample_->forward(x) : x));
}

ImageNetResNet::ImageNetResNet(int64_t depth, int64_t classes, Generator& gen,
                               const NormFactory& norm) {
  const Spec* spec = nullptr;
  for (const Spec& s : kSpecs) {
    if (s.depth == depth) spec = &s;
  }
  check(spec != nullptr, "[ResNet] ImageNet depth must be 18, 34, 50, 101 or 152, got ", depth);
  check(classes > 0, "[ResNet] classes must be positive, got ", classes);
  conv1_ = register_module("conv1", resnet_conv(3, 64, 7, 2, gen));
  bn1_ = register_module("bn1", resnet_norm(64, norm));
  const int64_t expansion = spec->bottleneck ? 4 : 1;
  int64_t in = 64;
  for (size_t i = 0; i < 4; ++i) {
    const int64_t planes = int64_t{64} << i, stride = i == 0 ? 1 : 2;
    auto stage = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < spec->blocks[i]; ++b) {
      stage->push_back(std::make_shared<ImageNetBlock>(in, planes, b == 0 ? stride : 1,
                                                       spec->bottleneck, gen, norm));
      in = planes * expansion;
    }
    layers_[i] = register_module("layer" + std::to_string(i + 1), stage);
  }
  fc_ = register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions{in, classes}, gen));
}

Tensor ImageNetResNet::forward(const Tensor& x) {
  check(x.dim() == 4 && x.size(1) == 3 && x.size(2) >= 32 && x.size(3) >= 32,
        "[ResNet] expects (N, 3, H, W) input with H, W >= 32 (224 for ImageNet), got ", x.desc());
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));       // (N, 64, H/2, W/2)
  h = max_pool2d(h, {3, 3}, {2, 2}, {1, 1});                // (N, 64, H/4, W/4)
  for (const auto& stage : layers_) h = stage->forward(h);  // (N, 512 e, H/32, W/32)
  h = adaptive_avg_pool2d(h, {1, 1}).flatten(1);            // (N, 512 e)
  return fc_->forward(h);                                   // (N, classes)
}

}  // namespace strata::models
