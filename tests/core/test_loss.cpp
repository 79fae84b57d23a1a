// Loss and attention values against PyTorch 1.13 literals (computed with
// `/usr/bin/python3 -c "import torch; ..."` on the same deterministic f64 inputs), the
// fused cross-entropy against its plain composition, and the error messages.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "core/ops/attention.h"
#include "core/ops/loss.h"
#include "core/ops/softmax.h"
#include "tests/support/values.h"

namespace strata {
namespace {

using testing::expect_near;
using testing::message_of;
using testing::ramp;

TEST(CrossEntropy, LabelSmoothingAndIgnoreIndexMatchTorch) {
  // logits = arange(15).reshape(5,3).sin() * 3, t = [0, 2, -100, 1, 2],
  // F.cross_entropy(logits, t, ignore_index=-100, label_smoothing=0.1, reduction=...)
  Tensor logits = sin(ramp({5, 3})) * 3.0;
  logits.set_requires_grad(true);
  Tensor t = from_vector<int64_t>({0, 2, -100, 1, 2}, {5});
  Tensor loss = cross_entropy(logits, t, -100, 0.1);
  EXPECT_NEAR(loss.item(), 2.431432861063405, 1e-12);
  EXPECT_NEAR(cross_entropy(logits, t, -100, 0.1, Reduction::sum).item(), 9.72573144425362, 1e-12);
  expect_near(
      cross_entropy(logits, t, -100, 0.1, Reduction::none).to_vector<double>(),
      {3.1847486837003673, 3.2693125587286116, 0.0, 2.8872272497910787, 0.3844429520335636});
  loss.backward();
  std::vector<double> g = logits.grad().to_vector<double>();
  expect_near({g[0], g[1], g[2]}, {-0.22464800335520704, 0.10009054530867256, 0.12455745804653448});
  expect_near({g[6], g[7], g[8]}, {0, 0, 0});
  // i32 targets are accepted too.
  EXPECT_NEAR(cross_entropy(logits, t.to(DType::i32), -100, 0.1).item(), 2.431432861063405, 1e-12);
}

TEST(CrossEntropy, SpatialLogitsMatchTorch) {
  // l3 = arange(12).reshape(2,3,2).cos() * 2, t3 = [[0,2],[1,-1]], ignore_index=-1
  Tensor l3 = cos(ramp({2, 3, 2})) * 2.0;
  Tensor t3 = from_vector<int64_t>({0, 2, 1, -1}, {2, 2});
  EXPECT_NEAR(cross_entropy(l3, t3, -1).item(), 1.1473747103850978, 1e-12);
}

TEST(CrossEntropy, FusedKernelMatchesPlainCompositionInF32) {
  Generator gen(5);
  Tensor x = randn({64, 1000}, gen, DType::f32, 0, 3);
  Tensor t = randint(0, 1000, {64}, gen);
  Tensor lp = log_softmax(x.to(DType::f64), 1);
  std::vector<double> lpv = lp.to_vector<double>();
  std::vector<int64_t> tv = t.to_vector<int64_t>();
  double want = 0;
  for (int64_t i = 0; i < 64; ++i) want -= lpv[i * 1000 + tv[i]] / 64;
  EXPECT_NEAR(cross_entropy(x, t).item(), want, 1e-5);
}

TEST(CrossEntropy, ErrorsNameTheBadTargetAndShapes) {
  Tensor logits = zeros({2, 5});
  EXPECT_EQ(message_of([&] {
              cross_entropy(logits, from_vector<int64_t>({1, 7}, {2}));
            }),
            "[cross_entropy] target value 7 at flat index 1 is out of range for 5 classes "
            "(expected 0..4 or ignore_index -100)");
  EXPECT_EQ(message_of([&] {
              cross_entropy(logits, from_vector<int64_t>({1, 2, 3}, {3}));
            }),
            "[cross_entropy] target i64[3] cpu does not match logits f32[2, 5] cpu: expected "
            "target shape [2] (logits without the class dim 1)");
  EXPECT_EQ(message_of([&] { cross_entropy(logits, zeros({2})); }),
            "[cross_entropy] target must hold class indices as i64 or i32, got f32[2] cpu");
  EXPECT_EQ(message_of([&] {
              cross_entropy(logits, from_vector<int64_t>({0, 1}, {2}), -100, 2.0);
            }),
            "[cross_entropy] label_smoothing must be in [0, 1], got 2");
}

TEST(CrossEntropy, AllIgnoredMeanIsNaNAsTorch) {
  Tensor t = from_vector<int64_t>({-100, -100}, {2});
  EXPECT_TRUE(std::isnan(cross_entropy(zeros({2, 3}), t).item()));
}

TEST(Losses, BceMseL1MatchTorch) {
  // xb, tb, pw below; F.binary_cross_entropy_with_logits(xb, tb) and (..., pos_weight=pw,
  // reduction='sum'); F.mse_loss(xb, tb); F.l1_loss(xb, tb, reduction='sum').
  Tensor xb = from_vector<double>({-2.0, 0.5, 3.0, 1.0, -0.3, 0.0}, {2, 3});
  Tensor tb = from_vector<double>({0.0, 1.0, 1.0, 0.5, 0.0, 1.0}, {2, 3});
  Tensor pw = from_vector<double>({1.0, 2.0, 0.5}, {3});
  EXPECT_NEAR(bce_with_logits(xb, tb).item(), 0.4517260765572528, 1e-12);
  EXPECT_NEAR(bce_with_logits(xb, tb, pw, Reduction::sum).item(), 2.8135661774567797, 1e-12);
  EXPECT_NEAR(mse_loss(xb, tb).item(), 1.5983333333333334, 1e-12);
  EXPECT_NEAR(l1_loss(xb, tb, Reduction::sum).item(), 6.3, 1e-12);
  // Large logits stay finite.
  Tensor big = from_vector<double>({1000.0, -1000.0}, {2});
  expect_near(bce_with_logits(big, from_vector<double>({0.0, 1.0}, {2}), {}, Reduction::none)
                  .to_vector<double>(),
              {1000.0, 1000.0});
  EXPECT_EQ(message_of([&] { mse_loss(xb, pw); }),
            "[mse_loss] input f64[2, 3] cpu and target f64[3] cpu must have the same shape");
}

/// q, k, v of (2, 2, 3|4, 3) from sin/cos ramps, as in the torch script.
struct Qkv {
  Tensor q = sin(ramp({2, 2, 3, 3}));
  Tensor k = cos(ramp({2, 2, 4, 3}));
  Tensor v = sin(ramp({2, 2, 4, 3}) * 0.3);
};

TEST(Attention, CausalAndPaddingMasksMatchTorch) {
  // torch 1.13: F._scaled_dot_product_attention(q, k, v, mask, 0.0, False, causal)[0]; the
  // combined mask by softmax(masked_fill(q k^T / sqrt(3), ~mask, -inf)) @ v.
  Qkv in;
  Tensor pad = from_vector<uint8_t>({1, 1, 1, 0, 1, 1, 0, 0}, {2, 1, 1, 4}).to(DType::b8);
  Tensor o_pad = scaled_dot_product_attention(in.q, in.k, in.v, pad);
  expect_near(o_pad.select(0, 1).select(0, 1).flatten().to_vector<double>(),
              {-0.8327976355032319, -0.6846935119322715, -0.47542775612968413, -0.8987543718504418,
               -0.8226541389970599, -0.6730686619777575, -0.8567451296075879, -0.7347840938233362,
               -0.5471869833094647});
  Tensor o_causal = scaled_dot_product_attention(in.q, in.k, in.v, {}, true);
  expect_near(o_causal.select(0, 0).select(0, 1).flatten().to_vector<double>(),
              {-0.4425204432948521, -0.6877661591839738, -0.8715757724135882, -0.6845215888555503,
               -0.8272641564729848, -0.8961096807931643, -0.7222078398275256, -0.7540017670350548,
               -0.7184429620000193});
  Tensor o_both = scaled_dot_product_attention(in.q, in.k, in.v, pad, true);
  expect_near(o_both.select(0, 1).select(0, 0).flatten().to_vector<double>(),
              {0.7936678638491527, 0.9379999767747389, 0.998543345374605, 0.8968507944494815,
               0.889166293859712, 0.8020552164000472, 0.8778014168736293, 0.8981818476810222,
               0.838330369046246});
}

TEST(Attention, FullyMaskedRowOutputsZeroNotNaN) {
  // torch 1.13 returns NaN for such a row; strata returns 0 (and a 0 gradient).
  Qkv in;
  Tensor q = in.q.clone().set_requires_grad(true);
  Tensor mask = from_vector<uint8_t>({1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}, {3, 4}).to(DType::b8);
  Tensor out = scaled_dot_product_attention(q, in.k, in.v, mask);
  std::vector<double> row = out.select(0, 0).select(0, 0).select(0, 1).to_vector<double>();
  expect_near(row, {0, 0, 0});
  sum(out).backward();
  for (double g : q.grad().to_vector<double>()) EXPECT_FALSE(std::isnan(g));
}

TEST(Attention, ErrorsNameShapes) {
  Qkv in;
  EXPECT_EQ(message_of([&] { scaled_dot_product_attention(in.q, in.k, in.v.slice(2, 0, 3)); }),
            "[scaled_dot_product_attention] k f64[2, 2, 4, 3] cpu and v f64[2, 2, 3, 3] cpu "
            "must have the same number of keys Tk");
  EXPECT_EQ(message_of([&] { scaled_dot_product_attention(in.q, in.k, in.v, zeros({4})); }),
            "[scaled_dot_product_attention] mask must be bool (true = attend), got f32[4] cpu");
  Tensor bad = zeros({3, 3}).to(DType::b8);
  EXPECT_NE(message_of([&] {
              scaled_dot_product_attention(in.q, in.k, in.v, bad);
            }).find("does not broadcast to (B, H, Tq, Tk) = [2, 2, 3, 4]"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
