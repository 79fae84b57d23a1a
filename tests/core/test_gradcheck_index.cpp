// Finite-difference checks (f64) of the indexing ops, embedding and dropout, with double
// backward through each differentiable backward formula.
#include <gtest/gtest.h>

#include "core/ops/embedding.h"
#include "core/ops/index.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::checked_ops;
using testing::gradcheck;
using testing::gradgradcheck;
using testing::leaf;
using V = std::vector<Tensor>;

Tensor idx(const std::vector<int64_t>& v, const Shape& s) { return from_vector<int64_t>(v, s); }

TEST(GradcheckIndex, ConcatStackSplit) {
  Tensor a = leaf({2, 3}, 1), b = leaf({2, 2}, 2), c = leaf({2, 3}, 3);
  EXPECT_TRUE(gradcheck([](const V& x) { return concat({x[0], x[1]}, 1); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return stack({x[0], x[1]}, 2); }, {a, c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return split(x[0], 2, 1)[1]; }, {a}));
  EXPECT_TRUE(gradgradcheck([](const V& x) { return square(concat({x[0], x[1]}, 1)); }, {a, b}));
}

TEST(GradcheckIndex, GatherScatter) {
  Tensor x = leaf({3, 4}, 4), src = leaf({2, 4}, 5), big_src = leaf({3, 5}, 6);
  Tensor i0 = idx({2, 0, 1, 2, 1, 1, 0, 0}, {2, 4});
  Tensor dup = idx({1, 1, 0, 1, 2, 2}, {3, 2});  // repeated along dim 1
  EXPECT_TRUE(gradcheck([i0](const V& v) { return gather(v[0], 0, i0); }, {x}));
  EXPECT_TRUE(gradcheck([dup](const V& v) { return gather(v[0], 1, dup); }, {x}));
  EXPECT_TRUE(gradcheck([i0](const V& v) { return scatter(v[0], 0, i0, v[1]); }, {x, src}));
  EXPECT_TRUE(
      gradcheck([dup](const V& v) { return scatter(v[0], 1, dup, v[1], true); }, {x, big_src}));
  EXPECT_TRUE(gradgradcheck([dup](const V& v) { return square(gather(v[0], 1, dup)); }, {x}));
  EXPECT_TRUE(gradgradcheck([dup](const V& v) { return square(scatter(v[0], 1, dup, v[1], true)); },
                            {x, big_src}));
}

TEST(GradcheckIndex, IndexSelectIndexAdd) {
  Tensor x = leaf({3, 4}, 7), rows = leaf({2, 4}, 8);
  Tensor i = idx({2, 0, 2}, {3});
  EXPECT_TRUE(gradcheck([i](const V& v) { return index_select(v[0], 1, i); }, {x}));
  EXPECT_TRUE(gradcheck(
      [](const V& v) {
        return index_add(v[0], 0, idx({2, 2}, {2}), v[1]);
      },
      {x, rows}));
  EXPECT_TRUE(gradgradcheck([i](const V& v) { return square(index_select(v[0], 0, i)); }, {x}));
  EXPECT_TRUE(gradgradcheck(
      [](const V& v) {
        return square(index_add(v[0], 1, idx({0, 0}, {2}), v[1]));
      },
      {x, leaf({3, 2}, 13)}));
  EXPECT_TRUE(checked_ops().count("index_select") && checked_ops().count("index_add"));
}

TEST(GradcheckIndex, PadAndUpsample) {
  Tensor x = leaf({2, 3, 4}, 9);
  EXPECT_TRUE(gradcheck([](const V& v) { return pad(v[0], {1, 2, 0, 1}, 0.5); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return pad(v[0], {-1, 2, 1, -1}); }, {x}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return square(pad(v[0], {1, 1})); }, {x}));
  Tensor img = leaf({1, 2, 2, 3}, 10);
  EXPECT_TRUE(gradcheck([](const V& v) { return upsample_nearest2d(v[0], 2, 3); }, {img}));
  EXPECT_TRUE(
      gradgradcheck([](const V& v) { return square(upsample_nearest2d(v[0], 2, 1)); }, {img}));
}

TEST(GradcheckIndex, Embedding) {
  Tensor w = leaf({5, 3}, 11);
  Tensor ids = idx({4, 0, 4, 2, 1, 4}, {2, 3});
  EXPECT_TRUE(gradcheck([ids](const V& v) { return embedding(v[0], ids); }, {w}));
  // The padding row gets no gradient by definition (finite differences disagree there), so
  // the check uses an unused padding row; Embedding.BackwardScatterAddsAndSkipsPadding
  // checks the skipped row's zero gradient.
  EXPECT_TRUE(gradcheck([ids](const V& v) { return embedding(v[0], ids, 3); }, {w}));
  EXPECT_TRUE(gradgradcheck([ids](const V& v) { return square(embedding(v[0], ids, 4)); }, {w}));
  EXPECT_TRUE(checked_ops().count("embedding"));
}

TEST(GradcheckIndex, DropoutWithAFixedGenerator) {
  Tensor x = leaf({4, 5}, 12);
  // Every evaluation restarts the generator, so the mask is fixed.
  auto fn = [](const V& v) {
    Generator gen(42);
    return dropout(v[0], 0.4, true, gen);
  };
  EXPECT_TRUE(gradcheck(fn, {x}));
  EXPECT_TRUE(gradgradcheck([fn](const V& v) { return square(fn(v)); }, {x}));
  EXPECT_TRUE(checked_ops().count("dropout"));
}

}  // namespace
}  // namespace strata
