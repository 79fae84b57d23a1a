// Normalisation and softmax values against PyTorch 1.13 literals (computed with
// `/usr/bin/python3 -c "import torch; ..."` on the same deterministic inputs, f64), and the
// error messages for bad shapes.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "core/ops/norm.h"
#include "core/ops/softmax.h"
#include "tests/support/values.h"

namespace strata {
namespace {

using testing::expect_near;
using testing::message_of;
using testing::ramp;

TEST(BatchNorm, RunningStatsAfterTwoTrainingSteps) {
  // x1 = arange(24).reshape(2,3,4).sin(), x2 = arange(24).reshape(2,3,4).cos() * 2,
  // F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5) twice from rm = 0, rv = 1.
  Tensor x1 = sin(ramp({2, 3, 4})), x2 = cos(ramp({2, 3, 4})) * 2.0;
  Tensor rm = zeros({3}, DType::f64), rv = ones({3}, DType::f64);
  Tensor w = from_vector<double>({1.0, 2.0, -0.5}, {3});
  Tensor b = from_vector<double>({0.1, 0.0, -0.2}, {3});
  batch_norm(x1, rm, rv, w, b, true, 0.1, 1e-5);
  Tensor y2 = batch_norm(x2, rm, rv, w, b, true, 0.1, 1e-5);
  expect_near(rm.to_vector<double>(),
              {0.06999707496798724, 0.008135867046300135, -0.08063299015800436});
  expect_near(rv.to_vector<double>(), {1.0853901871074965, 1.0694360107807843, 0.9676314053260825});
  expect_near(y2.select(0, 0).select(1, 0).to_vector<double>(),
              {1.2385387881637548, -2.4658794684458196, -0.5236229334182542});
  // Eval mode with the updated running stats: y[1, :, 3].
  Tensor ye = batch_norm(x1, rm, rv, w, b, false, 0.1, 1e-5);
  expect_near(ye.select(0, 1).select(1, 3).to_vector<double>(),
              {0.6569942516614388, 0.2741240284529484, 0.1891415171508405});
}

// Half activations (a convolution's output under autocast) keep f32 statistics and parameters
// in eval mode too: a running variance of 90000 overflows f16, and the output is rounded once.
TEST(BatchNorm, EvalOnHalfActivationsKeepsF32Statistics) {
  Tensor x = from_vector<float>({300, -300, 150, 0}, {4, 1}).to(DType::f16);
  Tensor rm = zeros({1}), rv = full({1}, 90000.0, DType::f32);
  Tensor w = ones({1}), b = zeros({1});
  Tensor y = batch_norm(x, rm, rv, w, b, false, 0.1, 0.0);
  EXPECT_EQ(y.dtype(), DType::f16);
  expect_near(y.to_vector<double>(), {1.0, -1.0, 0.5, 0.0}, 1e-3);
  Tensor xb = from_vector<float>({1.7f, -0.3f}, {2, 1}).to(DType::bf16);
  Tensor rvb = full({1}, 0.09, DType::f32), rmb = full({1}, 0.1, DType::f32);
  Tensor yb = batch_norm(xb, rmb, rvb, w, b, false, 0.1, 1e-5);
  EXPECT_EQ(yb.dtype(), DType::bf16);
  Tensor want = batch_norm(xb.to(DType::f32), rmb, rvb, w, b, false, 0.1, 1e-5).to(DType::bf16);
  EXPECT_EQ(yb.to_vector<double>(), want.to_vector<double>());
}

TEST(BatchNorm, ErrorsNameShapes) {
  Tensor x = zeros({1, 4});
  EXPECT_EQ(message_of([&] { batch_norm(x, {}, {}, {}, {}, true); }),
            "[batch_norm] expected more than 1 value per channel when training, got input "
            "f32[1, 4] cpu");
  EXPECT_EQ(message_of([&] {
              batch_norm(zeros({2, 4}), {}, {}, ones({3}), {}, true);
            }),
            "[batch_norm] weight f32[3] cpu should have shape [4] to match input f32[2, 4] cpu");
  EXPECT_NE(message_of([&] {
              batch_norm(zeros({2, 4}), {}, {}, {}, {}, false);
            }).find("[batch_norm] eval mode (training=false) needs running_mean"),
            std::string::npos);
}

TEST(LayerNorm, MatchesTorch) {
  // F.layer_norm(arange(12).reshape(3,4).sin(), (4,), w=[1,2,3,4], b=[0,.1,.2,.3])
  Tensor x = sin(ramp({3, 4}));
  Tensor w = from_vector<double>({1, 2, 3, 4}, {4});
  Tensor b = from_vector<double>({0, 0.1, 0.2, 0.3}, {4});
  expect_near(layer_norm(x, {4}, w, b).to_vector<double>(),
              {-1.1643418691553642, 1.9143085823462709, 3.4223793046688233, -2.967755427629516,
               -0.6773873911984031, -1.9032547933325206, 0.46528389649229196, 6.662347289468931,
               1.312482825212604, 1.246676352715506, -1.7529417361726283, -4.6393616913845905});
  // f32 goes through the vectorised kernels; it agrees to f32 precision.
  expect_near(
      layer_norm(x.to(DType::f32), {4}, w.to(DType::f32), b.to(DType::f32)).to_vector<double>(),
      layer_norm(x, {4}, w, b).to_vector<double>(), 1e-5);
}

TEST(LayerNorm, ShapeMismatchIsAClearError) {
  EXPECT_EQ(message_of([] {
              layer_norm(zeros({2, 3}), {4}, {}, {});
            }),
            "[layer_norm] input f32[2, 3] cpu does not end in normalized_shape [4]");
  EXPECT_EQ(message_of([] {
              layer_norm(zeros({2, 4}), {4}, ones({3}), {});
            }),
            "[layer_norm] weight f32[3] cpu should have shape [4] to match input f32[2, 4] cpu");
}

TEST(GroupNorm, GroupAndInstanceNormMatchTorch) {
  // xg = arange(24).reshape(2,4,3).cos(); F.group_norm(xg, 2, w=[1,2,3,4], b=[0,.1,.2,.3])[1]
  Tensor xg = cos(ramp({2, 4, 3}));
  Tensor w = from_vector<double>({1, 2, 3, 4}, {4});
  Tensor b = from_vector<double>({0, 0.1, 0.2, 0.3}, {4});
  expect_near(group_norm(xg, 2, w, b).select(0, 1).flatten().to_vector<double>(),
              {1.1938945308504068, 1.28204745402063, 0.21368316365636744, -1.9578982773916707,
               -2.506758089891668, -0.614593929771469, 2.944086669563573, 4.300752974877805,
               1.902031723310562, -2.6956051049560705, -5.186672566930472, -2.6135508184493785});
  // F.instance_norm(xg)[0]
  expect_near(instance_norm(xg, {}, {}).select(0, 0).flatten().to_vector<double>(),
              {1.0600057852916764, 0.28070525057950657, -1.3407110358711831, -0.9958122188959989,
               -0.3717012000453689, 1.3675134189413682, 0.910965542721675, 0.4812889433588319,
               -1.3922544860805068, -0.7919915815956375, -0.6186347749761165, 1.4106263565717538});
  EXPECT_EQ(message_of([&] { group_norm(xg, 3, w, b); }),
            "[group_norm] num_channels 4 of input f64[2, 4, 3] cpu is not divisible by "
            "num_groups 3");
}

TEST(Softmax, MatchesTorchAlongEveryDim) {
  // xs = arange(6).reshape(2,3) * 0.7
  Tensor xs = ramp({2, 3}) * 0.7;
  expect_near(softmax(xs, 0).to_vector<double>(),
              {0.10909682119561298, 0.10909682119561298, 0.10909682119561294, 0.8909031788043871,
               0.8909031788043871, 0.8909031788043871});
  expect_near(log_softmax(xs, 1).to_vector<double>(),
              {-1.9557123323460854, -1.2557123323460857, -0.5557123323460856, -1.9557123323460859,
               -1.2557123323460857, -0.5557123323460855});
  expect_near(logsumexp(xs, 1).to_vector<double>(), {1.9557123323460854, 4.0557123323460855});
}

TEST(Softmax, FastPathsAgreeWithAPlainLoopInF32) {
  // Long rows (vectorised exp, threads) and a middle dim (column blocks) against f64.
  Generator gen(3);
  Tensor x = randn({3, 70, 130}, gen, DType::f64, 0, 4);
  for (int64_t d : {0, 1, 2}) {
    Tensor want = softmax(x, d);
    expect_near(softmax(x.to(DType::f32), d).to_vector<double>(), want.to_vector<double>(), 1e-6);
    expect_near(log_softmax(x.to(DType::f32), d).to_vector<double>(),
                log_softmax(x, d).to_vector<double>(), 2e-5);
    expect_near(logsumexp(x.to(DType::f32), d, true).to_vector<double>(),
                log(sum(exp(x), {d}, true)).to_vector<double>(), 2e-5);
  }
  // Large logits stay finite (max subtracted first).
  Tensor big = from_vector<float>({1000.f, 1001.f, -1000.f}, {3});
  expect_near(softmax(big, 0).to_vector<double>(), {0.2689414213699951, 0.7310585786300049, 0.0},
              1e-6);
}

}  // namespace
}  // namespace strata
