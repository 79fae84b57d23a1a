// Finite-difference checks (f64) of the pools' third-order path: the backward of max_pool2d's
// backward (max_pool2d_gather) and of avg_pool2d's backward. First and second order are in
// test_gradcheck_conv.cpp (Pools, PoolsDoubleBackward).
#include <gtest/gtest.h>

#include "core/autograd/node.h"
#include "core/ops/pool.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::checked_ops;
using testing::gradcheck;
using testing::leaf;
using V = std::vector<Tensor>;

/// d/d(gy) of <pool_backward(gy), ggx>, built with create_graph: a graph whose output node is
/// the backward of the pool's backward op. v = {x, gy, ggx}.
template <class Pool>
Tensor backward_of_backward(const V& v, Pool pool) {
  Tensor y = pool(v[0]);
  Tensor gx = grad({y}, {v[0]}, {v[1]}, true, true)[0];  // the pool's backward op, of gy
  return grad({gx}, {v[1]}, {v[2]}, true, true)[0];      // its backward, of ggx
}

TEST(GradcheckPool, MaxPoolBackwardOfBackward) {
  // Distinct values keep the argmax away from ties, so the x-derivative (zero) is stable.
  Tensor x = leaf({1, 2, 5, 5}, 31), gy = leaf({1, 2, 3, 3}, 32), ggx = leaf({1, 2, 5, 5}, 33);
  EXPECT_TRUE(gradcheck(
      [](const V& v) {
        return backward_of_backward(v, [](const Tensor& t) {
          return max_pool2d(t, {3, 3}, {2, 2}, {1, 1});
        });
      },
      {x, gy, ggx}));
  EXPECT_TRUE(checked_ops().count("max_pool2d_gather"));
}

TEST(GradcheckPool, AvgPoolBackwardOfBackward) {
  Tensor x = leaf({1, 2, 5, 5}, 34), gy = leaf({1, 2, 3, 3}, 35), ggx = leaf({1, 2, 5, 5}, 36);
  EXPECT_TRUE(gradcheck(
      [](const V& v) {
        return backward_of_backward(v, [](const Tensor& t) {
          return avg_pool2d(t, {3, 3}, {2, 2}, {1, 1});
        });
      },
      {x, gy, ggx}));
  Tensor gy2 = leaf({1, 2, 2, 3}, 37);
  EXPECT_TRUE(gradcheck(
      [](const V& v) {
        return backward_of_backward(v, [](const Tensor& t) {
          return adaptive_avg_pool2d(t, {2, 3});
        });
      },
      {x, gy2, ggx}));
}

}  // namespace
}  // namespace strata
