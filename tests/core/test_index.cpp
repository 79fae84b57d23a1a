// Values and error messages of the indexing ops, embedding and dropout. Expected values come
// from torch 1.13 (/usr/bin/python3; the call is in the comment beside each literal).
#include <gtest/gtest.h>

#include "core/ops.h"
#include "core/ops/embedding.h"
#include "core/ops/index.h"
#include "tests/support/values.h"

namespace strata {
namespace {

using F = std::vector<float>;

Tensor grid() { return arange(0, 12, 1, DType::f32).reshape({3, 4}); }  // (3, 4) = 0..11
Tensor idx(const std::vector<int64_t>& v, const Shape& s) { return from_vector<int64_t>(v, s); }

/// The message of the Error `fn` throws, or "" when it throws none.
using strata::testing::message_of;

TEST(Index, ConcatStackSplit) {
  Tensor y = arange(0, 6, 1, DType::f32).reshape({2, 3});
  // torch.cat([y, torch.ones(2,1)*9], 1)
  EXPECT_EQ(concat({y, full({2, 1}, 9)}, 1).to_vector<float>(), (F{0, 1, 2, 9, 3, 4, 5, 9}));
  // torch.stack([y, -y], 1): (2, 2, 3)
  Tensor s = stack({y, neg(y)}, 1);
  EXPECT_EQ(s.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(s.to_vector<float>(), (F{0, 1, 2, -0.0f, -1, -2, 3, 4, 5, -3, -4, -5}));
  std::vector<Tensor> parts = split(grid(), 3, 1);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].shape(), (Shape{3, 1}));
  EXPECT_EQ(parts[1].to_vector<float>(), (F{3, 7, 11}));
  EXPECT_EQ(concat({full({1, 2}, 1, DType::bf16), zeros({1, 1}, DType::bf16)}, -1)
                .to(DType::f32)
                .to_vector<float>(),
            (F{1, 1, 0}));
}

TEST(Index, SplitReturnsViews) {
  Tensor g = grid();
  EXPECT_EQ(split(g, 2, 0)[1].storage(), g.storage());
}

TEST(Index, GatherScatterIndexSelectIndexAdd) {
  Tensor i0 = idx({2, 0, 1, 2, 1, 1, 0, 0}, {2, 4});
  // torch.gather(x, 0, i0) with x = arange(12).reshape(3, 4)
  EXPECT_EQ(gather(grid(), 0, i0).to_vector<float>(), (F{8, 1, 6, 11, 4, 5, 2, 3}));
  // torch.gather(x, 1, [[3,0],[1,1],[2,3]])
  EXPECT_EQ(gather(grid(), 1, idx({3, 0, 1, 1, 2, 3}, {3, 2})).to_vector<float>(),
            (F{3, 0, 5, 5, 10, 11}));
  // gather from a transposed (strided) input equals gather from its contiguous copy
  Tensor t = grid().t();
  Tensor it = idx({0, 2, 1, 0}, {2, 2});
  EXPECT_EQ(gather(t, 1, it).to_vector<float>(), gather(t.contiguous(), 1, it).to_vector<float>());
  Tensor src = arange(1, 9, 1, DType::f32).reshape({2, 4}) * 10.0;
  // torch.zeros(3,4).scatter(0, i0, src)
  EXPECT_EQ(scatter(zeros({3, 4}), 0, i0, src).to_vector<float>(),
            (F{0, 20, 70, 80, 50, 60, 30, 0, 10, 0, 0, 40}));
  // torch.ones(3,4).scatter_add(0, i0, src)
  EXPECT_EQ(scatter(ones({3, 4}), 0, i0, src, true).to_vector<float>(),
            (F{1, 21, 71, 81, 51, 61, 31, 1, 11, 1, 1, 41}));
  // duplicates accumulate
  EXPECT_EQ(scatter(zeros({2}), 0, idx({1, 1, 1}, {3}), ones({3}), true).to_vector<float>(),
            (F{0, 3}));
  // torch.index_select(x, 1, [3, 1, 3])
  EXPECT_EQ(index_select(grid(), 1, idx({3, 1, 3}, {3})).to_vector<float>(),
            (F{3, 1, 3, 7, 5, 7, 11, 9, 11}));
  // torch.zeros(3,4).index_add(0, [2, 0, 2], x)
  EXPECT_EQ(index_add(zeros({3, 4}), 0, idx({2, 0, 2}, {3}), grid()).to_vector<float>(),
            (F{4, 5, 6, 7, 0, 0, 0, 0, 8, 10, 12, 14}));
}

TEST(Index, PadAndUpsample) {
  Tensor y = arange(0, 6, 1, DType::f32).reshape({2, 3});
  // F.pad(y, (1, 2, 0, 1), value=-1): (3, 6)
  Tensor p = pad(y, {1, 2, 0, 1}, -1);
  EXPECT_EQ(p.shape(), (Shape{3, 6}));
  EXPECT_EQ(p.to_vector<float>(),
            (F{-1, 0, 1, 2, -1, -1, -1, 3, 4, 5, -1, -1, -1, -1, -1, -1, -1, -1}));
  // F.pad(y, (-1, 1))
  EXPECT_EQ(pad(y, {-1, 1}).to_vector<float>(), (F{1, 2, 0, 4, 5, 0}));
  // F.interpolate(arange(4).reshape(1,1,2,2), scale_factor=(2,3), mode='nearest')
  Tensor u = upsample_nearest2d(arange(0, 4, 1, DType::f32).reshape({1, 1, 2, 2}), 2, 3);
  EXPECT_EQ(u.shape(), (Shape{1, 1, 4, 6}));
  EXPECT_EQ(u.to_vector<float>(),
            (F{0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 3, 3, 3}));
}

TEST(Index, LargeScatterAddMatchesASerialLoop) {
  // Big enough to run on several threads; duplicates everywhere.
  const int64_t rows = 7, n = 50000, width = 3;
  Generator gen(3);
  Tensor index = randint(0, rows, {n}, gen);
  Tensor src = rand({n, width}, gen, DType::f64);
  Tensor got = index_add(zeros({rows, width}, DType::f64), 0, index, src);
  std::vector<double> want(rows * width, 0.0);
  auto iv = index.to_vector<int64_t>();
  auto sv = src.to_vector<double>();
  for (int64_t l = 0; l < n; ++l) {
    for (int64_t j = 0; j < width; ++j) want[iv[l] * width + j] += sv[l * width + j];
  }
  auto gv = got.to_vector<double>();
  for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(gv[k], want[k], 1e-9);
  Tensor s2 = scatter(zeros({rows, width}, DType::f64), 0,
                      index.unsqueeze(1).expand({n, width}).contiguous(), src, true);
  auto s2v = s2.to_vector<double>();
  for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(s2v[k], want[k], 1e-9);
}

TEST(Index, ErrorsNameTheProblem) {
  EXPECT_EQ(message_of([] {
              gather(grid(), 1, idx({4}, {1, 1}));
            }),
            "[gather] index 4 (position 0 of i64[1, 1] cpu) is out of range for dimension 1 of "
            "x f32[3, 4] cpu; indices must be in [0, 4)");
  EXPECT_EQ(message_of([] { gather(grid(), 0, idx({0}, {1})); }),
            "[gather] index i64[1] cpu must have as many dimensions as x f32[3, 4] cpu");
  EXPECT_EQ(message_of([] { index_select(grid(), 0, from_vector<int32_t>({0}, {1})); }),
            "[index_select] index must be i64, got i32[1] cpu; convert it with .to(DType::i64)");
  EXPECT_EQ(message_of([] {
              concat({grid(), zeros({2, 3})}, 0);
            }),
            "[concat] tensor 1 is f32[2, 3] cpu but tensor 0 is f32[3, 4] cpu; all dimensions "
            "except 0 must match");
  EXPECT_EQ(message_of([] {
              stack({grid(), zeros({4, 3})}, 0);
            }),
            "[stack] tensor 1 is f32[4, 3] cpu but tensor 0 is f32[3, 4] cpu; stacked tensors "
            "must have equal shapes");
  EXPECT_EQ(message_of([] {
              pad(grid(), {-3, -2});
            }),
            "[pad] padding (-3, -2) of dimension 1 of f32[3, 4] cpu gives a negative size");
  EXPECT_EQ(message_of([] { upsample_nearest2d(grid(), 2, 2); }).substr(0, 21),
            "[upsample_nearest2d] ");
  EXPECT_EQ(message_of([] {
              scatter(zeros({2, 2}), 0, idx({0, 1, 0}, {3, 1}), ones({2, 1}));
            }),
            "[scatter] index i64[3, 1] cpu is larger than src f32[2, 1] cpu in dimension 0");
}

TEST(Embedding, LooksUpRowsAndChecksTheRange) {
  Tensor w = arange(0, 8, 1, DType::f32).reshape({4, 2});
  Tensor e = embedding(w, idx({3, 0, 3}, {1, 3}));
  EXPECT_EQ(e.shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(e.to_vector<float>(), (F{6, 7, 0, 1, 6, 7}));
  EXPECT_EQ(message_of([&] {
              embedding(w, idx({1, 12}, {2}));
            }),
            "[embedding] index 12 (position 1 of i64[2] cpu) is out of range for a vocabulary of "
            "4 rows (weight f32[4, 2] cpu); indices must be in [0, 4)");
  EXPECT_EQ(message_of([&] { embedding(w, idx({-1}, {1})); }).substr(0, 22),
            "[embedding] index -1 (");
  EXPECT_EQ(message_of([&] { embedding(w, idx({0}, {1}), 4); }),
            "[embedding] padding_idx 4 is outside the vocabulary of 4 rows; use -1 for none");
}

TEST(Embedding, BackwardScatterAddsAndSkipsPadding) {
  // torch: w = arange(8.).reshape(4,2).requires_grad_(); F.embedding([[3,0,3,1]], w,
  // padding_idx=1).sum().backward() -> w.grad = [[1,1],[0,0],[0,0],[2,2]]
  Tensor w = arange(0, 8, 1, DType::f32).reshape({4, 2});
  w.set_requires_grad(true);
  sum(embedding(w, idx({3, 0, 3, 1}, {1, 4}), 1)).backward();
  EXPECT_EQ(w.grad().to_vector<float>(), (F{1, 1, 0, 0, 0, 0, 2, 2}));
  // bf16 weights accumulate in f32.
  Tensor wb = zeros({2, 2}, DType::bf16);
  wb.set_requires_grad(true);
  sum(embedding(wb, idx({1, 1, 1}, {3}))).backward();
  EXPECT_EQ(wb.grad().to(DType::f32).to_vector<float>(), (F{0, 0, 3, 3}));
}

TEST(Dropout, MaskIsThePhiloxBernoulliDraw) {
  const double p = 0.3;
  Tensor x = ones({1000}, DType::f64);
  Generator gen(11, 5), ref(11, 5);
  Tensor y = dropout(x, p, true, gen);
  Tensor keep = bernoulli({1000}, 1 - p, ref);
  EXPECT_EQ(gen.state(), ref.state());
  auto yv = y.to_vector<double>();
  auto kv = keep.to_vector<uint8_t>();
  int kept = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    EXPECT_DOUBLE_EQ(yv[i], kv[i] ? 1 / (1 - p) : 0.0) << i;
    kept += kv[i];
  }
  EXPECT_NEAR(kept, 700, 60);
}

TEST(Dropout, EvalIdentityEdgeProbabilitiesAndErrors) {
  Generator gen(1);
  Tensor x = grid();
  EXPECT_TRUE(dropout(x, 0.5, false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, gen).same(x));
  EXPECT_EQ(dropout(x, 1.0, true, gen).to_vector<float>(), F(12, 0.0f));
  EXPECT_EQ(gen.state().offset, 0u);
  EXPECT_EQ(message_of([&] { dropout(x, 1.5, true, gen); }),
            "[dropout] probability must be in [0, 1], got 1.5");
  EXPECT_EQ(message_of([&] { dropout(x, -0.1, true, gen); }),
            "[dropout] probability must be in [0, 1], got -0.1");
  // Large inputs take the parallel path and still match the serial draw.
  Generator a(9), b(9);
  Tensor big = dropout(ones({100003}), 0.25, true, a);
  Tensor keep = bernoulli({100003}, 0.75, b);
  EXPECT_TRUE(sum(ne(ne(big, scalar_tensor(0)), keep).to(DType::f32)).item() == 0);
}

}  // namespace
}  // namespace strata
