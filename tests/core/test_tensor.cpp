// Tensor basics: factories, views, dtype conversion, printing and error messages.
#include <gtest/gtest.h>

#include "core/ops.h"

namespace strata {
namespace {

TEST(Tensor, FactoriesFillValues) {
  Tensor z = zeros({2, 3});
  Tensor o = ones({2, 3}, DType::f64);
  Tensor f = full({4}, 2.5, DType::f32);
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(o.to_vector<double>(), std::vector<double>(6, 1.0));
  EXPECT_EQ(f.to_vector<float>(), std::vector<float>(4, 2.5f));
  EXPECT_EQ(arange(0, 5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(eye(2).to_vector<float>(), (std::vector<float>{1, 0, 0, 1}));
}

TEST(Tensor, TransposeIsAViewAndContiguousCopies) {
  Tensor a = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor t = a.t();
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.storage(), a.storage());
  EXPECT_EQ(t.contiguous().to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Tensor, SliceSelectExpandReshape) {
  Tensor a = arange(0, 12, 1, DType::f32).reshape({3, 4});
  EXPECT_EQ(a.slice(1, 1, 4, 2).to_vector<float>(), (std::vector<float>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(a.select(0, -1).to_vector<float>(), (std::vector<float>{8, 9, 10, 11}));
  Tensor row = from_vector<float>({1, 2}, {1, 2});
  EXPECT_EQ(row.expand({3, 2}).to_vector<float>(), (std::vector<float>{1, 2, 1, 2, 1, 2}));
  EXPECT_EQ(a.t().reshape({12}).to_vector<float>()[1], 4.0f);  // copy: not viewable
  EXPECT_EQ(a.reshape({2, -1}).shape(), (Shape{2, 6}));
}

TEST(Tensor, ViewOfPermutedTensorSharesStorageWhenPossible) {
  Tensor a = zeros({2, 3, 4});
  Tensor p = a.permute({1, 0, 2});  // (3, 2, 4): last dim still contiguous
  Tensor v = p.reshape({3, 2, 2, 2});
  EXPECT_EQ(v.storage(), a.storage());
}

TEST(Tensor, DtypeConversionsRoundTrip) {
  Tensor a = from_vector<float>({1.5f, -2.25f, 65504.0f, 1e-3f}, {4});
  EXPECT_EQ(a.to(DType::f16).to(DType::f32).to_vector<float>()[2], 65504.0f);
  EXPECT_NEAR(a.to(DType::bf16).to(DType::f32).to_vector<float>()[3], 1e-3, 1e-5);
  EXPECT_EQ(a.to(DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{1, -2, 65504, 0}));
  EXPECT_EQ(a.to(DType::b8).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1, 1}));
}

TEST(Tensor, PrintingIsReadable) {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(to_string(a), "Tensor([[1, 2],\n [3, 4]], f32[2, 2] cpu)");
  Tensor big = arange(0, 100);
  EXPECT_EQ(to_string(big, 2), "Tensor([0, 1, ..., 98, 99], i64[100] cpu)");
}

TEST(Tensor, ErrorsNameOpShapesAndDtypes) {
  Tensor a = zeros({2, 3});
  Tensor b = zeros({4, 5});
  try {
    add(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[add] shapes [2, 3] and [4, 5] cannot be broadcast together (dimension 0: 2 "
                 "vs 4)");
  }
  try {
    add(a, zeros({2, 3}, DType::f64));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[add] dtype mismatch: f32[2, 3] cpu and f64[2, 3] cpu; convert one with "
                 ".to(dtype)");
  }
  EXPECT_THROW(a.reshape({7}), Error);
  EXPECT_THROW(matmul(a, zeros({2, 3})), Error);
  EXPECT_THROW(zeros({2}, DType::f32, Device::cuda(0)), Error);
}

TEST(Tensor, BroadcastArithmetic) {
  Tensor a = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = from_vector<float>({10, 20, 30}, {3});
  EXPECT_EQ((a + b).to_vector<float>(), (std::vector<float>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ((a * 2.0).to_vector<float>(), (std::vector<float>{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(sum(a, {0}).to_vector<float>(), (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(sum(a, {1}, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(max(a, {1}).to_vector<float>(), (std::vector<float>{3, 6}));
  EXPECT_EQ(argmax(a, 1).to_vector<int64_t>(), (std::vector<int64_t>{2, 2}));
  EXPECT_NEAR(var(a).item(), 3.5, 1e-6);
  EXPECT_EQ(where(gt(a, scalar_like(3, a)), a, zeros_like(a)).to_vector<float>(),
            (std::vector<float>{0, 0, 0, 4, 5, 6}));
}

TEST(Tensor, MatmulMatchesHandComputedProduct) {
  Tensor a = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  EXPECT_EQ(matmul(a, b).to_vector<float>(), (std::vector<float>{4, 5, 10, 11}));
  EXPECT_EQ(matmul(b.t(), a.t()).to_vector<float>(), (std::vector<float>{4, 10, 5, 11}));
  Tensor batch = a.unsqueeze(0).expand({3, 2, 3});
  EXPECT_EQ(matmul(batch, b).shape(), (Shape{3, 2, 2}));
}

TEST(Random, PhiloxMatchesTheReferenceVector) {
  // Known-answer test from the Random123 distribution (philox4x32_10, key and counter 0).
  auto r = philox4x32(0, 0, 0);
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
}

TEST(Random, SameSeedSameNumbersAndStateResumes) {
  Generator g1(42), g2(42);
  EXPECT_EQ(randn({10}, g1).to_vector<float>(), randn({10}, g2).to_vector<float>());
  Generator::State s = g1.state();
  std::vector<float> next = rand({5}, g1).to_vector<float>();
  Generator g3(0);
  g3.set_state(s);
  EXPECT_EQ(rand({5}, g3).to_vector<float>(), next);
  Tensor n = randn({20000}, g1);
  EXPECT_NEAR(mean(n).item(), 0.0, 0.03);
  EXPECT_NEAR(var(n).item(), 1.0, 0.05);
}

TEST(Random, ReplicasSideBySideDrawTheWholeDraw) {
  // Three replicas each draw 8 values twice; concatenated they are one generator's draws of 24.
  Generator whole(7);
  std::vector<float> first = rand({24}, whole).to_vector<float>();
  std::vector<float> second = rand({24}, whole).to_vector<float>();
  for (int64_t r = 0; r < 3; ++r) {
    Generator g(7);
    g.set_replica(r, 3);
    std::vector<float> a = rand({8}, g).to_vector<float>(), b = rand({8}, g).to_vector<float>();
    EXPECT_EQ(a, std::vector<float>(first.begin() + 8 * r, first.begin() + 8 * (r + 1)));
    EXPECT_EQ(b, std::vector<float>(second.begin() + 8 * r, second.begin() + 8 * (r + 1)));
    EXPECT_EQ(g.state(), whole.state()) << "every replica moves past all replicas' values";
  }
  Generator g(7);
  EXPECT_THROW(g.set_replica(3, 3), Error);
  EXPECT_THROW(g.set_replica(0, 0), Error);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(Tensor, EmptyTensorsFillCopyAndConvert) {
  Tensor t = empty({0, 3});
  fill_(t, 1.0);
  EXPECT_TRUE(t.to_vector<float>().empty());
  Tensor u = t.to(DType::f64).transpose(0, 1).contiguous();
  EXPECT_EQ(u.shape(), (Shape{3, 0}));
  EXPECT_EQ(u.dtype(), DType::f64);
  EXPECT_EQ(full({2, 0}, 5.0).numel(), 0);
}

}  // namespace
}  // namespace strata
