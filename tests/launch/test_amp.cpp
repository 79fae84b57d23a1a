// train.amp in the trainer (launch/amp.h): config keys and their errors, what configure_amp
// sets up, and that every rank skips a step when any rank's gradients overflowed.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>

#include "core/ops.h"
#include "distributed/thread_communicator.h"
#include "launch/amp.h"
#include "tests/support/values.h"

namespace strata::launch {
namespace {

using strata::testing::message_of;

TEST(AmpConfig, DefaultsAndBadValuesNameTheKey) {
  Json cfg = resolve_config_json(Json::object(), {});
  EXPECT_EQ(get<std::string>(cfg, "train.amp"), "none");
  EXPECT_EQ(get<double>(cfg, "train.loss_scale.init"), 65536.0);
  EXPECT_EQ(get<int64_t>(cfg, "train.loss_scale.growth_interval"), 2000);
  EXPECT_EQ(message_of([] { resolve_config_json(Json::object(), {"train.amp=fp32"}); }),
            "[config] train.amp: unknown value 'fp32'; choose none, bf16 or fp16");
  EXPECT_EQ(message_of([] { resolve_config_json(Json::object(), {"train.loss_scale.init=0"}); }),
            "[config] train.loss_scale.init must be positive, got 0");
  EXPECT_EQ(message_of([] {
              resolve_config_json(Json::object(), {"train.loss_scale.growth_interval=-1"});
            }),
            "[config] train.loss_scale.growth_interval must be positive, got -1");
}

TEST(AmpConfig, ConfigureAmpSetsTheDtypeAndTheScaler) {
  TrainParts parts;
  configure_amp(parts, resolve_config_json(Json::object(), {}));
  EXPECT_FALSE(parts.autocast.has_value());
  EXPECT_FALSE(parts.scaler.has_value());
  configure_amp(parts, resolve_config_json(Json::object(), {"train.amp=bf16"}));
  EXPECT_EQ(parts.autocast, DType::bf16);
  EXPECT_FALSE(parts.scaler.has_value());
  configure_amp(
      parts, resolve_config_json(Json::object(), {"train.amp=fp16", "train.loss_scale.init=1024"}));
  EXPECT_EQ(parts.autocast, DType::f16);
  ASSERT_TRUE(parts.scaler.has_value());
  EXPECT_EQ(parts.scaler->scale_value(), 1024.0);
}

/// Two thread ranks, each with one parameter whose gradient is `grads[rank]`; returns each
/// rank's verdict of unscale_gradients and its unscaled gradient.
std::vector<std::pair<bool, std::vector<float>>> unscale_on_two_ranks(
    const std::vector<std::vector<float>>& grads) {
  auto comms = dist::make_thread_communicators(2);
  std::vector<std::pair<bool, std::vector<float>>> out(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      TrainParts parts;
      parts.world = comms[r];
      parts.scaler.emplace(optim::LossScalerOptions{.init_scale = 4});
      Tensor p = zeros({2});
      p.set_requires_grad(true);
      p.set_grad(from_vector<float>(grads[r], {2}));
      out[r].first = unscale_gradients(parts, {p});
      out[r].second = p.grad().to_vector<float>();
      update_loss_scale(parts, out[r].first);
      if (out[r].first) {
        EXPECT_EQ(parts.skipped_steps, 1);
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

TEST(AmpStep, EveryRankSkipsWhenAnyRankOverflowed) {
  const float inf = std::numeric_limits<float>::infinity();
  auto clean = unscale_on_two_ranks({{4, -8}, {12, 2}});
  EXPECT_FALSE(clean[0].first);
  EXPECT_FALSE(clean[1].first);
  EXPECT_EQ(clean[0].second, (std::vector<float>{1, -2}));
  EXPECT_EQ(clean[1].second, (std::vector<float>{3, 0.5}));
  auto one_inf = unscale_on_two_ranks({{4, -8}, {inf, 2}});  // only rank 1 overflowed
  EXPECT_TRUE(one_inf[0].first);
  EXPECT_TRUE(one_inf[1].first);
}

}  // namespace
}  // namespace strata::launch
