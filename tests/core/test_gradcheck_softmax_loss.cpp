// Finite-difference checks (f64) of softmax, log_softmax, logsumexp, the losses and
// attention, with ignore_index, label smoothing, masks and causal; double backward too.
#include <gtest/gtest.h>

#include "core/ops/attention.h"
#include "core/ops/loss.h"
#include "core/ops/softmax.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::gradcheck;
using testing::gradgradcheck;
using testing::leaf;
using V = std::vector<Tensor>;

TEST(GradcheckSoftmax, EveryDimAndDoubleBackward) {
  Tensor x = leaf({3, 4, 5}, 1, -2, 2);
  for (int64_t d : {0, 1, 2, -1}) {
    EXPECT_TRUE(gradcheck([d](const V& v) { return softmax(v[0], d); }, {x})) << d;
    EXPECT_TRUE(gradcheck([d](const V& v) { return log_softmax(v[0], d); }, {x})) << d;
    EXPECT_TRUE(gradcheck([d](const V& v) { return logsumexp(v[0], d); }, {x})) << d;
  }
  EXPECT_TRUE(gradcheck([](const V& v) { return logsumexp(v[0], 1, true); }, {x}));
  Tensor y = leaf({3, 4}, 2, -2, 2);
  EXPECT_TRUE(gradgradcheck([](const V& v) { return softmax(v[0], 1); }, {y}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return log_softmax(v[0], 0); }, {y}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return logsumexp(v[0], 1); }, {y}));
}

TEST(GradcheckLoss, CrossEntropyVariants) {
  Tensor x = leaf({5, 4}, 3, -2, 2);
  Tensor t = from_vector<int64_t>({0, 3, -100, 1, 3}, {5});
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    EXPECT_TRUE(
        gradcheck([t, r](const V& v) { return cross_entropy(v[0], t, -100, 0.0, r); }, {x}));
    EXPECT_TRUE(
        gradcheck([t, r](const V& v) { return cross_entropy(v[0], t, -100, 0.1, r); }, {x}));
  }
  Tensor x3 = leaf({2, 3, 2, 2}, 4, -2, 2);
  Tensor t3 = from_vector<int32_t>({0, 2, 1, -1, 2, 2, 0, 1}, {2, 2, 2});
  EXPECT_TRUE(gradcheck([t3](const V& v) { return cross_entropy(v[0], t3, -1, 0.2); }, {x3}));
  EXPECT_TRUE(gradgradcheck([t](const V& v) { return cross_entropy(v[0], t, -100, 0.1); }, {x}));
}

TEST(GradcheckLoss, BceMseL1) {
  Tensor x = leaf({3, 4}, 5, -3, 3), t = leaf({3, 4}, 6, 0, 1), pw = leaf({4}, 7, 0.5, 2);
  EXPECT_TRUE(gradcheck([](const V& v) { return bce_with_logits(v[0], v[1]); }, {x, t}));
  EXPECT_TRUE(gradcheck(
      [](const V& v) { return bce_with_logits(v[0], v[1], v[2], Reduction::none); }, {x, t, pw}));
  EXPECT_TRUE(
      gradgradcheck([](const V& v) { return bce_with_logits(v[0], v[1], v[2]); }, {x, t, pw}));
  EXPECT_TRUE(gradcheck([](const V& v) { return mse_loss(v[0], v[1]); }, {x, t}));
  EXPECT_TRUE(gradcheck([](const V& v) { return l1_loss(v[0], v[1], Reduction::sum); }, {x, t}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return mse_loss(v[0], v[1]); }, {x, t}));
}

TEST(GradcheckAttention, MasksCausalAndScale) {
  Tensor q = leaf({2, 2, 3, 4}, 8), k = leaf({2, 2, 5, 4}, 9), v = leaf({2, 2, 5, 3}, 10);
  EXPECT_TRUE(gradcheck([](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); },
                        {q, k, v}));
  EXPECT_TRUE(gradcheck(
      [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, true, 0.3); },
      {q, k, v}));
  // Padding mask (B, 1, 1, Tk) plus a fully masked query row in batch 1.
  std::vector<uint8_t> bits = {1, 1, 1, 0, 0, 1, 1, 0, 0, 0};
  Tensor pad = from_vector<uint8_t>(bits, {2, 1, 1, 5}).to(DType::b8);
  EXPECT_TRUE(gradcheck(
      [pad](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], pad, true); },
      {q, k, v}));
  Tensor rows =
      from_vector<uint8_t>({1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1}, {3, 5}).to(DType::b8);
  EXPECT_TRUE(
      gradcheck([rows](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], rows); },
                {q, k, v}));
  EXPECT_TRUE(gradgradcheck(
      [pad](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], pad, true); },
      {q, k, v}));
}

// GPT's packed q/k/v projection (B, T, 3C), causal and not, 2 heads of 3.
TEST(GradcheckAttention, PackedSelfAttention) {
  Tensor qkv = leaf({2, 4, 18}, 31, -1, 1);
  for (bool causal : {true, false}) {
    EXPECT_TRUE(
        gradcheck([causal](const V& x) { return packed_self_attention(x[0], 2, causal); }, {qkv}));
  }
  EXPECT_TRUE(
      gradgradcheck([](const V& x) { return packed_self_attention(x[0], 2, true); }, {qkv}));
}

}  // namespace
}  // namespace strata
