// Double backward end to end: the WGAN-GP gradient penalty of a small convolutional critic,
// differentiated with respect to the critic's weights, against finite differences.
#include <gtest/gtest.h>

#include "core/ops/conv.h"
#include "core/ops/pool.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::leaf;
using V = std::vector<Tensor>;

/// critic(x) = linear(mean_pool(leaky_relu(conv2d(x, w1, b1))), w2, b2): (N, 1).
Tensor critic(const Tensor& x, const V& p) {
  Tensor h = leaky_relu(conv2d(x, p[0], p[1], {.stride = {2, 2}, .padding = {1, 1}}), 0.2);
  h = adaptive_avg_pool2d(h, {1, 1}).flatten(1);  // (N, C)
  return linear(h, p[2], p[3]);
}

/// mean over samples of (||d critic / d x||_2 - 1)^2, built with create_graph.
Tensor gradient_penalty(const Tensor& x, const V& p) {
  Tensor xi = x.detach();
  xi.set_requires_grad(true);
  Tensor out = critic(xi, p);
  Tensor g = grad({sum(out)}, {xi}, {}, true, true)[0];  // (N, 1, H, W)
  Tensor norm = sqrt(sum(square(g.flatten(1)), {1}) + 1e-12);
  return mean(square(norm - 1.0));
}

TEST(GradcheckWganGp, PenaltyGradientMatchesFiniteDifferences) {
  Tensor x = leaf({2, 1, 6, 6}, 31).detach();
  V params = {leaf({3, 1, 3, 3}, 32), leaf({3}, 33), leaf({1, 3}, 34), leaf({1}, 35)};
  EXPECT_TRUE(testing::gradcheck([&x](const V& p) { return gradient_penalty(x, p); }, params,
                                 {.eps = 1e-6, .atol = 1e-6, .rtol = 1e-4}));
  // The penalty is a real second-order quantity: it moves the first-layer weights.
  Tensor gp = gradient_penalty(x, params);
  std::vector<Tensor> g = grad({gp}, {params[0]});
  EXPECT_GT(sum(abs(g[0])).item(), 1e-6);
}

}  // namespace
}  // namespace strata
