// CIFAR ResNet blocks and stages; convolutions are Kaiming-normal initialised (fan_out, relu).
#include "models/resnet.h"

#include "core/nn/init.h"
#include "core/ops.h"
#include "core/ops/pool.h"

namespace strata::models {

std::shared_ptr<nn::Conv2d> resnet_conv(int64_t in, int64_t out, int64_t k, int64_t stride,
                                        Generator& gen) {
  auto c = std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in_channels = in,
                                                          .out_channels = out,
                                                          .kernel_size = {k, k},
                                                          .stride = {stride, stride},
                                                          .padding = {k / 2, k / 2},
                                                          .bias = false},
                                        gen);
  nn::init::kaiming_normal_(c->weight(), gen, 0, nn::init::FanMode::fan_out,
                            nn::init::Nonlinearity::relu);
  return c;
}

std::shared_ptr<nn::BatchNorm> resnet_norm(int64_t channels, const NormFactory& norm) {
  if (norm) return norm(channels);
  return std::make_shared<nn::BatchNorm2d>(nn::BatchNormOptions{.num_features = channels});
}

BasicBlock::BasicBlock(int64_t in, int64_t out, int64_t stride, Generator& gen,
                       const NormFactory& norm) {
  conv1_ = register_module("conv1", resnet_conv(in, out, 3, stride, gen));
  bn1_ = register_module("bn1", resnet_norm(out, norm));
  conv2_ = register_module("conv2", resnet_conv(out, out, 3, 1, gen));
  bn2_ = register_module("bn2", resnet_norm(out, norm));
  shortcut_ = register_module("shortcut", std::make_shared<nn::Sequential>());
  if (stride != 1 || in != out) {
    shortcut_->push_back(resnet_conv(in, out, 1, stride, gen));
    shortcut_->push_back(resnet_norm(out, norm));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));
  h = bn2_->forward(conv2_->forward(h));
  return relu(add(h, shortcut_->forward(x)));
}

CifarResNet::CifarResNet(int64_t depth, int64_t classes, Generator& gen, const NormFactory& norm) {
  check(depth >= 8 && (depth - 2) % 6 == 0,
        "[ResNet] CIFAR depth must be 6n+2 (20, 32, 44, "
        "56, 110), got ",
        depth);
  int64_t n = (depth - 2) / 6;
  conv1_ = register_module("conv1", resnet_conv(3, 16, 3, 1, gen));
  bn1_ = register_module("bn1", resnet_norm(16, norm));
  auto stage = [&](const char* name, int64_t in, int64_t out, int64_t stride) {
    auto s = register_module(name, std::make_shared<nn::Sequential>());
    for (int64_t i = 0; i < n; ++i) {
      s->push_back(
          std::make_shared<BasicBlock>(i == 0 ? in : out, out, i == 0 ? stride : 1, gen, norm));
    }
    return s;
  };
  layer1_ = stage("layer1", 16, 16, 1);
  layer2_ = stage("layer2", 16, 32, 2);
  layer3_ = stage("layer3", 32, 64, 2);
  fc_ = register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions{64, classes}, gen));
}

namespace {

/// conv1, bn1 and ReLU of a CifarResNet, as one pipeline block.
class Stem : public nn::Layer {
 public:
  Stem(std::shared_ptr<nn::Conv2d> conv, std::shared_ptr<nn::BatchNorm> bn)
      : conv_(register_module("conv1", std::move(conv))),
        bn_(register_module("bn1", std::move(bn))) {}
  Tensor forward(const Tensor& x) override {
    check(x.dim() == 4 && x.size(1) == 3, "[ResNet] expects (N, 3, H, W) input, got ", x.desc());
    return relu(bn_->forward(conv_->forward(x)));  // (N, 16, H, W)
  }

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm> bn_;
};

/// Global average pooling and the classifier, as one pipeline block.
class Head : public nn::Layer {
 public:
  explicit Head(std::shared_ptr<nn::Linear> fc) : fc_(register_module("fc", std::move(fc))) {}
  Tensor forward(const Tensor& x) override {
    return fc_->forward(adaptive_avg_pool2d(x, {1, 1}).flatten(1));  // (N, classes)
  }

 private:
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

Tensor CifarResNet::forward(const Tensor& x) {
  check(x.dim() == 4 && x.size(1) == 3, "[ResNet] expects (N, 3, H, W) input, got ", x.desc());
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));           // (N, 16, 32, 32)
  h = layer3_->forward(layer2_->forward(layer1_->forward(h)));  // (N, 64, 8, 8)
  h = adaptive_avg_pool2d(h, {1, 1}).flatten(1);                // (N, 64)
  return fc_->forward(h);                                       // (N, classes)
}

std::vector<std::shared_ptr<nn::Layer>> CifarResNet::pipeline_blocks() const {
  std::vector<std::shared_ptr<nn::Layer>> out{std::make_shared<Stem>(conv1_, bn1_)};
  for (const auto& stage : {layer1_, layer2_, layer3_}) {
    for (int64_t i = 0; i < stage->size(); ++i) out.push_back(stage->at(i));
  }
  out.push_back(std::make_shared<Head>(fc_));
  return out;
}

}  // namespace strata::models
