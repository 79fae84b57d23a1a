// torchvision's ResNet-50 (and 18/34/101/152) rebuilt in strata: parameter counts and names
// as torchvision's state_dict, its initialisation, and a forward/backward on a small batch.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "core/ops.h"
#include "core/ops/loss.h"
#include "models/resnet_imagenet.h"

namespace strata::models {
namespace {

std::map<std::string, Tensor> by_name(const nn::NamedTensors& named) {
  return {named.begin(), named.end()};
}

/// (mean, standard deviation) of every element of t.
std::pair<double, double> moments(const Tensor& t) {
  std::vector<double> v = t.to(DType::f64).contiguous().to_vector<double>();
  double mean = 0, sq = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  for (double x : v) sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / static_cast<double>(v.size()))};
}

bool all_finite(const Tensor& t) {
  for (double x : t.to(DType::f64).contiguous().to_vector<double>()) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

TEST(ResNetImageNet, Resnet50HasTorchvisionsParameters) {
  Generator gen(0);
  ImageNetResNet net(50, 1000, gen);
  EXPECT_EQ(net.num_parameters(), 25557032);  // sum(p.numel()) of torchvision's resnet50()
  nn::NamedTensors named = net.named_parameters();
  // 53 convs (stem 1, blocks 48, downsample 4), 53 batch norms x 2, fc x 2.
  ASSERT_EQ(named.size(), 161u);
  EXPECT_EQ(named.front().first, "conv1.weight");
  EXPECT_EQ(named[3].first, "layer1.0.conv1.weight");
  EXPECT_EQ(named[named.size() - 2].first, "fc.weight");
  EXPECT_EQ(named.back().first, "fc.bias");
  EXPECT_EQ(net.named_buffers().size(), 53u * 3);  // running_mean, running_var, count
  auto p = by_name(named);
  const std::map<std::string, Shape> known{{"conv1.weight", {64, 3, 7, 7}},
                                           {"bn1.weight", {64}},
                                           {"layer1.0.conv3.weight", {256, 64, 1, 1}},
                                           {"layer1.0.downsample.0.weight", {256, 64, 1, 1}},
                                           {"layer1.0.downsample.1.bias", {256}},
                                           {"layer2.0.conv2.weight", {128, 128, 3, 3}},
                                           {"layer3.5.conv2.weight", {256, 256, 3, 3}},
                                           {"layer3.5.bn3.weight", {1024}},
                                           {"layer4.0.downsample.0.weight", {2048, 1024, 1, 1}},
                                           {"layer4.2.conv3.weight", {2048, 512, 1, 1}},
                                           {"fc.weight", {1000, 2048}},
                                           {"fc.bias", {1000}}};
  for (const auto& [name, shape] : known) {
    ASSERT_TRUE(p.count(name)) << name;
    EXPECT_EQ(p.at(name).shape(), shape) << name;
  }
  // Only the first block of each stage changes shape, so only it has a shortcut conv.
  EXPECT_FALSE(p.count("layer1.1.downsample.0.weight"));
  EXPECT_FALSE(p.count("layer3.5.downsample.0.weight"));
}

TEST(ResNetImageNet, InitialisationIsTorchvisions) {
  Generator gen(0);
  ImageNetResNet net(50, 1000, gen);
  auto p = by_name(net.named_parameters());
  // kaiming_normal fan_out, relu: std = sqrt(2 / (out * kH * kW)).
  auto [mean, sd] = moments(p.at("layer4.0.conv2.weight"));  // 2.4M samples
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, std::sqrt(2.0 / (512 * 9)), 0.01 * std::sqrt(2.0 / (512 * 9)));
  auto [mean1, sd1] = moments(p.at("layer1.0.conv1.weight"));
  EXPECT_NEAR(sd1, std::sqrt(2.0 / 64), 0.05 * std::sqrt(2.0 / 64));
  // BN weight 1, bias 0.
  EXPECT_DOUBLE_EQ(moments(p.at("layer2.1.bn2.weight")).first, 1.0);
  EXPECT_DOUBLE_EQ(moments(p.at("layer2.1.bn2.bias")).first, 0.0);
  // fc: nn.Linear's U(-1/sqrt(2048), 1/sqrt(2048)), std = bound / sqrt(3).
  const double bound = 1 / std::sqrt(2048.0);
  EXPECT_LE(max(abs(p.at("fc.weight"))).item(), bound);
  EXPECT_NEAR(moments(p.at("fc.weight")).second, bound / std::sqrt(3.0), 0.02 * bound);
}

TEST(ResNetImageNet, Resnet50ForwardAndBackwardOnASmallBatch) {
  Generator gen(0);
  ImageNetResNet net(50, 1000, gen);
  Generator data(1);
  Tensor x = randn({2, 3, 64, 64}, data);  // (B, 3, H, W); layer4 runs at 2x2
  Tensor y = randint(0, 1000, {2}, data);
  Tensor logits = net.forward(x);
  ASSERT_EQ(logits.shape(), (Shape{2, 1000}));
  EXPECT_TRUE(all_finite(logits));
  Tensor loss = cross_entropy(logits, y);
  // Batch-normalised features and a small fc: the initial loss is near log(1000) = 6.9.
  EXPECT_GT(loss.item(), 5.0);
  EXPECT_LT(loss.item(), 10.0);
  loss.backward();
  for (auto& [name, t] : net.named_parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    const double norm = sum(mul(t.grad(), t.grad())).item();
    EXPECT_TRUE(std::isfinite(norm) && norm > 0) << name << " gradient norm^2 " << norm;
  }
}

TEST(ResNetImageNet, OtherDepthsMatchTorchvisionsCounts) {
  Generator gen(0);
  EXPECT_EQ(ImageNetResNet(18, 1000, gen).num_parameters(), 11689512);
  EXPECT_EQ(ImageNetResNet(34, 1000, gen).num_parameters(), 21797672);
  EXPECT_EQ(ImageNetResNet(101, 1000, gen).num_parameters(), 44549160);
  // 152 (60,192,808) differs from 101 only in its row of the table; not built, for time.
  // BasicBlock names: no conv3; layer2.0 downsamples 64 -> 128.
  ImageNetResNet r18(18, 10, gen);
  auto p = by_name(r18.named_parameters());
  EXPECT_EQ(p.at("layer2.0.downsample.0.weight").shape(), (Shape{128, 64, 1, 1}));
  EXPECT_FALSE(p.count("layer1.0.conv3.weight"));
  EXPECT_FALSE(p.count("layer1.0.downsample.0.weight"));
  EXPECT_EQ(p.at("fc.weight").shape(), (Shape{10, 512}));
}

TEST(ResNetImageNet, NormFactoryMakesEveryBatchNorm) {
  Generator gen(0);
  int made = 0;
  NormFactory norm = [&](int64_t c) {
    ++made;
    return std::make_shared<nn::BatchNorm2d>(nn::BatchNormOptions{.num_features = c});
  };
  ImageNetResNet net(50, 1000, gen, norm);
  EXPECT_EQ(made, 53);
}

TEST(ResNetImageNet, BadDepthAndInputAreErrors) {
  Generator gen(0);
  try {
    ImageNetResNet net(20, 1000, gen);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[ResNet] ImageNet depth must be 18, 34, 50, 101 or 152, got 20");
  }
  ImageNetResNet net(18, 10, gen);
  try {
    net.forward(zeros({1, 3, 16, 16}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[ResNet] expects (N, 3, H, W) input with H, W >= 32"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace strata::models
