// Finite-difference checks (f64) of the normalisation layers, double backward where the
// backward is differentiable, and the clear error for create_graph through layer_norm.
#include <gtest/gtest.h>

#include "core/ops/norm.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::gradcheck;
using testing::gradgradcheck;
using testing::leaf;
using V = std::vector<Tensor>;

TEST(GradcheckNorm, LayerNorm) {
  Tensor x = leaf({3, 2, 5}, 1), w = leaf({2, 5}, 2), b = leaf({2, 5}, 3);
  EXPECT_TRUE(gradcheck(
      [](const V& v) {
        return layer_norm(v[0], {2, 5}, v[1], v[2]);
      },
      {x, w, b}));
  EXPECT_TRUE(gradcheck([](const V& v) { return layer_norm(v[0], {5}, {}, {}); }, {x}));
  Tensor w5 = leaf({5}, 4);
  EXPECT_TRUE(gradcheck([](const V& v) { return layer_norm(v[0], {5}, v[1], {}); }, {x, w5}));
}

TEST(GradcheckNorm, LayerNormCreateGraphIsAClearError) {
  Tensor x = leaf({2, 4}, 5);
  Tensor y = sum(square(layer_norm(x, {4}, {}, {})));
  try {
    grad({y}, {x}, {}, false, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[autograd] layer_norm is a fused op with a hand-written backward kernel and has no "
              "double backward; compute this part with differentiable ops to use create_graph");
  }
}

TEST(GradcheckNorm, BatchNormTrainingAndEval) {
  Tensor x = leaf({4, 3, 2}, 6), w = leaf({3}, 7), b = leaf({3}, 8);
  EXPECT_TRUE(
      gradcheck([](const V& v) { return batch_norm(v[0], {}, {}, v[1], v[2], true); }, {x, w, b}));
  Tensor x2 = leaf({5, 3}, 9);
  EXPECT_TRUE(gradcheck([](const V& v) { return batch_norm(v[0], {}, {}, {}, {}, true); }, {x2}));
  Tensor rm = from_vector<double>({0.1, -0.2, 0.3}, {3});
  Tensor rv = from_vector<double>({0.5, 1.5, 2.0}, {3});
  EXPECT_TRUE(gradcheck(
      [rm, rv](const V& v) { return batch_norm(v[0], rm, rv, v[1], v[2], false); }, {x, w, b}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return batch_norm(v[0], {}, {}, v[1], v[2], true); },
                            {x, w, b}));
}

TEST(GradcheckNorm, GroupAndInstanceNorm) {
  Tensor x = leaf({2, 4, 3}, 10), w = leaf({4}, 11), b = leaf({4}, 12);
  EXPECT_TRUE(gradcheck([](const V& v) { return group_norm(v[0], 2, v[1], v[2]); }, {x, w, b}));
  EXPECT_TRUE(gradcheck([](const V& v) { return instance_norm(v[0], v[1], v[2]); }, {x, w, b}));
  EXPECT_TRUE(gradcheck([](const V& v) { return instance_norm(v[0], {}, {}); }, {x}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return group_norm(v[0], 2, v[1], v[2]); }, {x, w, b}));
}

}  // namespace
}  // namespace strata
