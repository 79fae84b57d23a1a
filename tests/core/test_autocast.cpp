// Autocast (core/autocast.h): which dtype each op family computes and returns under a guard,
// f32 gradients for the f32 parameters, a small model's loss near f32's, and fp16 overflow
// caught by the loss scaler.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "core/autocast.h"
#include "core/ops.h"
#include "core/optim/loss_scaler.h"
#include "core/random.h"
#include "tests/support/values.h"

namespace strata {
namespace {

using strata::testing::message_of;

Tensor param(const Shape& shape, uint64_t seed, double std = 0.3) {
  Generator gen(seed);
  Tensor p = randn(shape, gen, DType::f32, 0.0, std);
  p.set_requires_grad(true);
  return p;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  return max(abs(a.detach().to(DType::f64) - b.detach().to(DType::f64))).item();
}

TEST(Autocast, OffByDefaultAndGuardsNest) {
  EXPECT_FALSE(autocast_dtype().has_value());
  {
    AutocastGuard outer(DType::bf16);
    EXPECT_EQ(autocast_dtype(), DType::bf16);
    {
      AutocastGuard off(std::nullopt);
      EXPECT_FALSE(autocast_dtype().has_value());
    }
    EXPECT_EQ(autocast_dtype(), DType::bf16);
  }
  EXPECT_FALSE(autocast_dtype().has_value());
  EXPECT_EQ(message_of([] { AutocastGuard bad(DType::f64); }),
            "[autocast] the low dtype must be bf16 or f16, got f64");
}

TEST(Autocast, Tf32IsOffByDefaultPerThreadAndGuardsNest) {
  EXPECT_FALSE(tf32_allowed());
  {
    Tf32Guard on(true);
    EXPECT_TRUE(tf32_allowed());
    bool other_thread = true;
    std::thread([&] { other_thread = tf32_allowed(); }).join();
    EXPECT_FALSE(other_thread) << "each thread (rank) has its own setting";
    {
      Tf32Guard off(false);
      EXPECT_FALSE(tf32_allowed());
    }
    EXPECT_TRUE(tf32_allowed());
    // The CPU computes exact f32 either way.
    Generator gen(9);
    Tensor a = randn({5, 7}, gen), b = randn({7, 3}, gen);
    std::vector<float> with = matmul(a, b).to_vector<float>();
    Tf32Guard off(false);
    EXPECT_EQ(with, matmul(a, b).to_vector<float>());
  }
  EXPECT_FALSE(tf32_allowed());
}

TEST(Autocast, GemmOpsComputeInTheLowDtype) {
  Tensor x = param({3, 4}, 1), w = param({5, 4}, 2), b = param({5}, 3);
  Tensor img = param({1, 2, 5, 5}, 4), k = param({3, 2, 3, 3}, 5), kt = param({2, 3, 3, 3}, 6);
  Tensor q = param({1, 2, 3, 4}, 7), kk = param({1, 2, 3, 4}, 8), v = param({1, 2, 3, 4}, 9);
  for (DType low : {DType::bf16, DType::f16}) {
    AutocastGuard amp(low);
    Tensor y = linear(x, w, b);
    EXPECT_EQ(y.dtype(), low);
    EXPECT_EQ(matmul(x, w.t()).dtype(), low);
    EXPECT_EQ(matmul(q, kk.transpose(-1, -2)).dtype(), low);  // batched
    EXPECT_EQ(conv2d(img, k, Tensor(), {}).dtype(), low);
    EXPECT_EQ(conv_transpose2d(img, kt, Tensor(), {}).dtype(), low);
    EXPECT_EQ(scaled_dot_product_attention(q, kk, v, Tensor(), true).dtype(), low);
    // Exactly the op on operands rounded to the low dtype (here: computed in f32 from them).
    AutocastGuard off(std::nullopt);
    Tensor want = linear(x.to(low), w.to(low), b.to(low));
    EXPECT_EQ(max_abs_diff(y, want), 0.0);
    EXPECT_GT(max_abs_diff(y, linear(x, w, b)), 0.0);  // it did round
  }
  // f64 operands are left alone (gradient checks under a guard stay exact).
  AutocastGuard amp(DType::bf16);
  EXPECT_EQ(matmul(x.to(DType::f64), w.t().to(DType::f64)).dtype(), DType::f64);
}

TEST(Autocast, PrecisionSensitiveOpsReturnF32) {
  Tensor xb = param({4, 6}, 10).to(DType::bf16);
  Tensor target = from_vector<int64_t>({0, 5, 2, 3}, {4});
  Tensor g = ones({6}), z = zeros({6});
  Tensor img = param({2, 6, 2, 2}, 11).to(DType::f16);
  {
    AutocastGuard amp(DType::bf16);
    EXPECT_EQ(softmax(xb, -1).dtype(), DType::f32);
    EXPECT_EQ(log_softmax(xb, -1).dtype(), DType::f32);
    EXPECT_EQ(logsumexp(xb, -1).dtype(), DType::f32);
    EXPECT_EQ(cross_entropy(xb, target).dtype(), DType::f32);
    EXPECT_EQ(mse_loss(xb, zeros({4, 6})).dtype(), DType::f32);
    EXPECT_EQ(layer_norm(xb, {6}, g, z).dtype(), DType::f32);  // f32 weight, bf16 input
    // Batch norm runs in its input's dtype, as torch's autocast does (f32 statistics inside).
    Tensor bn = batch_norm(img, zeros({6}), ones({6}), g, z, true);
    EXPECT_EQ(bn.dtype(), DType::f16);
    EXPECT_EQ(
        max_abs_diff(
            bn, batch_norm(img.to(DType::f32), zeros({6}), ones({6}), g, z, true).to(DType::f16)),
        0.0);
    EXPECT_EQ(group_norm(img, 3, g, z).dtype(), DType::f32);
    EXPECT_EQ(sum(xb).dtype(), DType::f32);
    EXPECT_EQ(mean(xb, {1}).dtype(), DType::f32);
    // The f32 result of the bf16 values, not of rounder ones.
    EXPECT_EQ(max_abs_diff(softmax(xb, -1), softmax(xb.to(DType::f32), -1)), 0.0);
  }
  // Without a guard a bf16 input keeps its dtype, as before.
  EXPECT_EQ(softmax(xb, -1).dtype(), DType::bf16);
  EXPECT_EQ(sum(xb).dtype(), DType::bf16);
}

TEST(Autocast, ElementwiseOpsPromoteLowAndF32ToF32) {
  Tensor a = from_vector<float>({1.5f, -2.0f, 3.25f}, {3}).to(DType::bf16);
  Tensor b = from_vector<float>({0.25f, 4.0f, -1.0f}, {3});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  Tensor y = add(mul(a, b), b);  // bf16 * f32 + f32
  EXPECT_EQ(y.dtype(), DType::f32);
  strata::testing::expect_near(y, std::vector<double>{0.625, -4.0, -4.25});
  EXPECT_EQ(sub(b, a).dtype(), DType::f32);
  EXPECT_EQ(div(a, b).dtype(), DType::f32);
  EXPECT_EQ(maximum(a, b).dtype(), DType::f32);
  EXPECT_EQ(gt(a, b).to(DType::u8).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ((a.detach().to(DType::f16) + a.detach()).dtype(), DType::f32);  // f16 + bf16
  sum(y).backward();
  // Each leaf gets its gradient in its own dtype: d/da = b, d/db = a + 1.
  EXPECT_EQ(a.grad().dtype(), DType::bf16);
  EXPECT_EQ(b.grad().dtype(), DType::f32);
  strata::testing::expect_near(a.grad(), std::vector<double>{0.25, 4.0, -1.0});
  strata::testing::expect_near(b.grad(), std::vector<double>{2.5, -1.0, 4.25});
}

/// A two-layer MLP with layer norm and GELU: the mean cross-entropy of 8 samples.
struct Mlp {
  Tensor w1 = param({32, 16}, 20), b1 = param({32}, 21, 0.1);
  Tensor w2 = param({10, 32}, 23), b2 = param({10}, 24, 0.1);
  Tensor x = param({8, 16}, 25, 1.0).detach();
  Tensor target = from_vector<int64_t>({1, 3, 5, 7, 9, 0, 2, 4}, {8});
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  Tensor loss() const {
    Tensor h = gelu(layer_norm(linear(x, w1, b1), {32}, Tensor(), Tensor()));
    return cross_entropy(linear(h, w2, b2), target);
  }
  void zero_grad() {
    for (Tensor p : params()) p.set_grad(Tensor());
  }
};

TEST(Autocast, SmallModelLossAndGradientsNearF32) {
  Mlp m;
  Tensor ref = m.loss();
  ref.backward();
  std::vector<Tensor> ref_grads;
  for (const Tensor& p : m.params()) ref_grads.push_back(p.grad().clone());
  m.zero_grad();
  Tensor low;
  {
    AutocastGuard amp(DType::bf16);
    low = m.loss();
  }
  EXPECT_EQ(low.dtype(), DType::f32);
  // bf16 keeps 8 bits of mantissa: the loss (about 2.6) within 2%, yet not bit-equal.
  double rel = std::abs(low.item() - ref.item()) / ref.item();
  EXPECT_LT(rel, 2e-2);
  EXPECT_GT(rel, 0.0);
  low.backward();
  for (size_t i = 0; i < ref_grads.size(); ++i) {
    Tensor p = m.params()[i];
    ASSERT_TRUE(p.grad().defined()) << "param " << i;
    EXPECT_EQ(p.grad().dtype(), DType::f32) << "param " << i;  // master weights stay f32
    double scale = max(abs(ref_grads[i])).item();
    EXPECT_LT(max_abs_diff(p.grad(), ref_grads[i]), 0.05 * scale) << "param " << i;
  }
}

TEST(Autocast, BackwardInsideTheGuardRunsInTheForwardDtypes) {
  Mlp m;
  AutocastGuard amp(DType::bf16);
  Tensor loss = m.loss();
  loss.backward();  // backward formulas are not re-autocast: dtypes match their inputs
  for (const Tensor& p : m.params()) EXPECT_EQ(p.grad().dtype(), DType::f32);
  EXPECT_EQ(autocast_dtype(), DType::bf16);
}

TEST(Autocast, Fp16OverflowIsFoundAndTheScalerBacksOff) {
  Mlp m;
  Tensor ref = m.loss();
  ref.backward();
  Tensor ref_w1 = m.w1.grad().clone();
  m.zero_grad();
  for (double init : {std::ldexp(1.0, 40), 1024.0}) {
    optim::LossScaler scaler(optim::LossScalerOptions{.init_scale = init});
    Tensor loss;
    {
      AutocastGuard amp(DType::f16);
      loss = m.loss();
    }
    scaler.scale(loss).backward();
    bool found_inf = scaler.unscale_(m.params());
    scaler.update(found_inf);
    if (init > 1e6) {
      // 2^40 times the gradients exceeds f16's 65504 in the f16 GEMM backward.
      EXPECT_TRUE(found_inf);
      EXPECT_EQ(scaler.scale_value(), std::ldexp(1.0, 39));
    } else {
      EXPECT_FALSE(found_inf);
      EXPECT_EQ(scaler.scale_value(), 1024.0);
      EXPECT_LT(max_abs_diff(m.w1.grad(), ref_w1), 0.02 * max(abs(ref_w1)).item());
    }
    m.zero_grad();
  }
}

}  // namespace
}  // namespace strata
