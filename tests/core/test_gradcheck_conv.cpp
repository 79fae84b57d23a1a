// Finite-difference checks (f64) of conv2d, conv_transpose2d and the pools, including double
// backward through the convolutions' backward ops (WGAN-GP's gradient penalty needs it).
#include <gtest/gtest.h>

#include "core/ops/conv.h"
#include "core/ops/pool.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::checked_ops;
using testing::gradcheck;
using testing::gradgradcheck;
using testing::leaf;
using V = std::vector<Tensor>;

TEST(GradcheckConv, Conv2dStridePaddingBias) {
  Tensor x = leaf({2, 2, 5, 5}, 1), w = leaf({3, 2, 3, 3}, 2), b = leaf({3}, 3);
  Conv2dParams p{.stride = {2, 2}, .padding = {1, 1}};
  EXPECT_TRUE(gradcheck([p](const V& v) { return conv2d(v[0], v[1], v[2], p); }, {x, w, b}));
}

TEST(GradcheckConv, Conv2dDilationGroupsAsymmetric) {
  Tensor x = leaf({1, 4, 6, 5}, 4), w = leaf({4, 2, 2, 3}, 5);
  Conv2dParams p{.stride = {1, 2}, .padding = {1, 0}, .dilation = {2, 1}, .groups = 2};
  EXPECT_TRUE(gradcheck([p](const V& v) { return conv2d(v[0], v[1], {}, p); }, {x, w}));
}

TEST(GradcheckConv, Conv2dPointwise) {
  Tensor x = leaf({2, 3, 3, 3}, 6), w = leaf({2, 3, 1, 1}, 7), b = leaf({2}, 8);
  EXPECT_TRUE(gradcheck([](const V& v) { return conv2d(v[0], v[1], v[2]); }, {x, w, b}));
}

TEST(GradcheckConv, ConvTranspose2dStrideGroupsOutputPadding) {
  Tensor x = leaf({1, 4, 3, 3}, 9), w = leaf({4, 2, 3, 3}, 10), b = leaf({4}, 11);
  Conv2dParams p{.stride = {2, 2}, .padding = {1, 1}, .groups = 2, .output_padding = {1, 1}};
  EXPECT_TRUE(
      gradcheck([p](const V& v) { return conv_transpose2d(v[0], v[1], v[2], p); }, {x, w, b}));
}

TEST(GradcheckConv, ConvTranspose2dDilationWithOutputPadding) {
  // output_padding 1 at stride 1 is legal because dilation is 2: the extra row gets no input.
  Tensor x = leaf({2, 2, 3, 3}, 12), w = leaf({2, 3, 2, 2}, 13);
  Conv2dParams p{.dilation = {2, 2}, .output_padding = {1, 0}};
  EXPECT_TRUE(gradcheck([p](const V& v) { return conv_transpose2d(v[0], v[1], {}, p); }, {x, w}));
}

TEST(GradcheckConv, Conv2dDoubleBackward) {
  Tensor x = leaf({2, 2, 4, 4}, 14), w = leaf({2, 2, 3, 3}, 15), b = leaf({2}, 16);
  Conv2dParams p{.stride = {2, 1}, .padding = {1, 1}};
  EXPECT_TRUE(gradgradcheck([p](const V& v) { return conv2d(v[0], v[1], v[2], p); }, {x, w, b}));
  EXPECT_TRUE(checked_ops().count("conv2d_weight_grad"));
  EXPECT_TRUE(checked_ops().count("conv_transpose2d"));
}

TEST(GradcheckConv, ConvTranspose2dDoubleBackward) {
  Tensor x = leaf({1, 2, 3, 3}, 17), w = leaf({2, 2, 3, 3}, 18);
  Conv2dParams p{.stride = {2, 2}, .padding = {1, 0}, .groups = 2, .output_padding = {1, 0}};
  EXPECT_TRUE(
      gradgradcheck([p](const V& v) { return conv_transpose2d(v[0], v[1], {}, p); }, {x, w}));
  EXPECT_TRUE(checked_ops().count("conv2d_weight_grad"));
  EXPECT_TRUE(checked_ops().count("conv2d"));
}

TEST(GradcheckConv, Pools) {
  Tensor x = leaf({2, 2, 5, 5}, 19);
  EXPECT_TRUE(gradcheck([](const V& v) { return max_pool2d(v[0], {3, 3}, {2, 2}, {1, 1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return max_pool2d(v[0], {2, 2}, {2, 2}); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return avg_pool2d(v[0], {3, 3}, {2, 2}, {1, 1}); }, {x}));
  Tensor y = leaf({1, 2, 5, 7}, 20);
  EXPECT_TRUE(gradcheck([](const V& v) { return adaptive_avg_pool2d(v[0], {3, 2}); }, {y}));
  EXPECT_TRUE(gradcheck([](const V& v) { return adaptive_avg_pool2d(v[0], {1, 1}); }, {y}));
}

TEST(GradcheckConv, PoolsDoubleBackward) {
  // Squared so that the first gradient depends on x and its own backward op is exercised.
  Tensor x = leaf({1, 2, 5, 5}, 21);
  EXPECT_TRUE(gradgradcheck(
      [](const V& v) {
        return square(max_pool2d(v[0], {3, 3}, {2, 2}, {1, 1}));
      },
      {x}));
  EXPECT_TRUE(gradgradcheck(
      [](const V& v) {
        return square(avg_pool2d(v[0], {3, 3}, {2, 2}, {1, 1}));
      },
      {x}));
  EXPECT_TRUE(gradgradcheck(
      [](const V& v) {
        return square(adaptive_avg_pool2d(v[0], {2, 3}));
      },
      {x}));
  // max_pool2d_gather runs as max_pool2d_backward's backward; it is the forward's gather again.
  for (const char* name :
       {"max_pool2d_backward", "avg_pool2d_backward", "adaptive_avg_pool2d_backward"}) {
    EXPECT_TRUE(checked_ops().count(name)) << name;
  }
}

}  // namespace
}  // namespace strata
