// optim::LossScaler against torch.cuda.amp.GradScaler's rule: scaling, unscaling, skipping on
// inf/NaN, back-off and growth, saved state, and bad options.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/optim/loss_scaler.h"
#include "tests/support/values.h"

namespace strata::optim {
namespace {

using strata::testing::message_of;

Tensor param_with_grad(std::vector<float> grad) {
  Tensor p = zeros({static_cast<int64_t>(grad.size())});
  p.set_requires_grad(true);
  p.set_grad(from_vector<float>(grad, {static_cast<int64_t>(grad.size())}));
  return p;
}

TEST(LossScaler, ScalesTheLossAndUnscalesTheGradients) {
  LossScaler s(LossScalerOptions{.init_scale = 1024});
  EXPECT_EQ(s.scale(scalar_tensor(0.5)).item(), 512.0);
  Tensor a = param_with_grad({1024, -2048}), b = param_with_grad({4096});
  EXPECT_FALSE(s.unscale_({a, b, Tensor()}));
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{1, -2}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{4}));
}

TEST(LossScaler, FindsInfAndNaNAndBacksOff) {
  const float inf = std::numeric_limits<float>::infinity();
  LossScaler s(LossScalerOptions{.init_scale = 8});
  EXPECT_TRUE(s.unscale_({param_with_grad({1, inf})}));
  EXPECT_TRUE(s.unscale_({param_with_grad({std::nanf("")}), param_with_grad({1})}));
  // Large finite values do not count as overflow (the check accumulates in f64).
  EXPECT_FALSE(s.unscale_({param_with_grad(std::vector<float>(64, 3e38f))}));
  s.update(true);
  EXPECT_EQ(s.scale_value(), 4.0);
  EXPECT_EQ(s.state().growth_tracker, 0);
}

TEST(LossScaler, GrowsAfterTheIntervalOfCleanSteps) {
  // The rule of aten's _amp_update_scale_ (GradScaler's update; CUDA-only in Debian's torch,
  // so worked by hand): with growth_interval 3 the scale doubles on every third clean step in
  // a row, and an inf step halves it and restarts the count.
  LossScaler s(LossScalerOptions{.growth_interval = 3});
  std::vector<double> scales;
  for (bool inf : {false, false, false, false, true, false, false, false}) {
    s.update(inf);
    scales.push_back(s.scale_value());
  }
  EXPECT_EQ(scales,
            (std::vector<double>{65536, 65536, 131072, 131072, 65536, 65536, 65536, 131072}));
}

TEST(LossScaler, StateRoundTripsAndBadInputIsRefused) {
  LossScaler s;
  s.update(false);
  LossScaler t;
  t.set_state(s.state());
  EXPECT_EQ(t.state(), (LossScaler::State{65536, 1}));
  EXPECT_EQ(message_of([&] {
              t.set_state({-1, 0});
            }),
            "[LossScaler] a saved state needs a positive finite scale and a tracker >= 0; got "
            "scale -1, tracker 0");
  EXPECT_EQ(message_of([] { LossScaler(LossScalerOptions{.backoff_factor = 1.5}); }),
            "[LossScaler] backoff_factor must be in (0, 1), got 1.5");
  EXPECT_EQ(message_of([] { LossScaler(LossScalerOptions{.growth_interval = 0}); }),
            "[LossScaler] growth_interval must be positive, got 0");
}

}  // namespace
}  // namespace strata::optim
