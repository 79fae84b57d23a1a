// Stage partitioning: explicit balance lists, the min-max split by cost and by parameter
// count, stage modules sharing the blocks, and the errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <iostream>

#include "core/error.h"
#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/linear.h"
#include "core/random.h"
#include "distributed/pipeline/partition.h"
#include "tests/support/values.h"

namespace strata::dist::pipeline {
namespace {

using strata::testing::message_of;

TEST(PipelinePartition, ExplicitBalance) {
  EXPECT_EQ(partition_by_balance(6, {1, 3, 2}), (std::vector<StageRange>{{0, 1}, {1, 4}, {4, 6}}));
  EXPECT_EQ(message_of([] {
              partition_by_balance(6, {2, 2});
            }),
            "[pipeline.partition] balance {2, 2} sums to 4 but the model has 6 blocks; the counts "
            "must add up to 6");
  EXPECT_EQ(
      message_of([] {
        partition_by_balance(3, {3, 0});
      }),
      "[pipeline.partition] balance {3, 0} gives stage 1 0 blocks; every stage needs at least "
      "one");
  EXPECT_EQ(message_of([] { partition_by_balance(3, {}); }),
            "[pipeline.partition] the balance list is empty; give one block count per stage");
}

TEST(PipelinePartition, BalancesCostMinimisingTheLargestStage) {
  EXPECT_EQ(balance_by_cost({1, 1, 1, 1}, 2), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(balance_by_cost({4, 1, 1, 1, 1}, 2), (std::vector<int64_t>{1, 4}));
  // Stage costs 15, 13, 17: no split has a smaller largest stage.
  EXPECT_EQ(balance_by_cost({1, 2, 3, 4, 5, 6, 7, 8, 9}, 3), (std::vector<int64_t>{5, 2, 2}));
  EXPECT_EQ(balance_by_cost({5, 5, 5}, 3), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(balance_by_cost({0, 0, 0, 0}, 1), (std::vector<int64_t>{4}));
  EXPECT_EQ(message_of([] {
              balance_by_cost({1, 1}, 3);
            }),
            "[pipeline.partition] cannot split 2 blocks into 3 stages: every stage needs at least "
            "one block; use at most 2 stages");
  EXPECT_EQ(message_of([] {
              balance_by_cost({1, -1}, 1);
            }),
            "[pipeline.partition] block 1 has negative cost -1");
  EXPECT_EQ(message_of([] { balance_by_cost({1}, 0); }),
            "[pipeline.partition] stages is 0; it must be at least 1");
}

TEST(PipelinePartition, ByParameterCountAndStageModules) {
  Generator gen(3);
  // Parameters: 4*8+8 = 40, 8*8+8 = 72, 0 (GELU), 8*8+8 = 72, 8*2+2 = 18.
  std::vector<std::shared_ptr<nn::Layer>> blocks = {
      std::make_shared<nn::Linear>(nn::LinearOptions{4, 8}, gen),
      std::make_shared<nn::Linear>(nn::LinearOptions{8, 8}, gen), std::make_shared<nn::GELU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions{8, 8}, gen),
      std::make_shared<nn::Linear>(nn::LinearOptions{8, 2}, gen)};
  std::vector<int64_t> balance = balance_by_parameters(blocks, 2);
  EXPECT_EQ(balance, (std::vector<int64_t>{2, 3}));  // 112 against 90
  auto ranges = partition_by_balance(5, balance);
  auto second = stage_module(blocks, ranges[1]);
  EXPECT_EQ(second->size(), 3);
  EXPECT_EQ(second->num_parameters(), 90);
  // The stage shares the blocks' parameters (no copy).
  EXPECT_TRUE(second->parameters()[0].same(blocks[3]->parameters()[0]));
  EXPECT_EQ(message_of([&] {
              stage_module(blocks, {3, 7});
            }),
            "[pipeline.partition] stage range [3, 7) is not a non-empty range of the 5 blocks");
}

// A block of Linear(W, H), GELU, Linear(H, W): its forward costs about 4 W H per row.
std::shared_ptr<nn::Layer> mlp_block(int64_t w, int64_t h, Generator& gen) {
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(nn::LinearOptions{w, h}, gen), std::make_shared<nn::GELU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions{h, w}, gen)});
}

// Six blocks, the third 4x wider inside (4x the work). Three stages by measured time: the
// heavy block alone ({2, 1, 3}, largest stage h) beats any split that adds a block to it
// (largest stage >= 1 + h) whenever h > 2 uniform blocks, so the margin is wide for timing.
TEST(PipelinePartition, ByMeasuredForwardCostTheHeavyBlockIsAlone) {
  constexpr int64_t kW = 256;
  // One OpenMP thread while timing: on a shared machine (CI, 2 cores) a descheduled thread
  // stalls every parallel region by milliseconds; one thread times the work itself.
  struct OneThread {
    int before = omp_get_max_threads();
    OneThread() { omp_set_num_threads(1); }
    ~OneThread() { omp_set_num_threads(before); }
  } one_thread;
  Generator gen(4);
  std::vector<std::shared_ptr<nn::Layer>> blocks;
  for (int64_t i = 0; i < 6; ++i) blocks.push_back(mlp_block(kW, i == 2 ? 4 * kW : kW, gen));
  Tensor sample = randn({128, kW}, gen);  // (rows, W)
  std::vector<int64_t> costs = measure_forward_costs(blocks, sample, 7);
  ASSERT_EQ(costs.size(), 6u);
  int64_t uniform = 0;
  for (int64_t i = 0; i < 6; ++i) {
    std::cout << "block " << i << ": " << costs[i] << " ns\n";
    EXPECT_GT(costs[i], 0);
    if (i != 2) uniform = std::max(uniform, costs[i]);
  }
  EXPECT_GT(costs[2], 2 * uniform) << "the 4x wider block did not measure as heavy";
  EXPECT_EQ(balance_by_cost(costs, 3), (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(balance_by_forward_cost(blocks, sample, 3, 7), (std::vector<int64_t>{2, 1, 3}));
  // Measuring recorded no graph: the parameters have no gradient and nothing is held.
  EXPECT_FALSE(blocks[0]->parameters()[0].grad().defined());
}

TEST(PipelinePartition, MeasuringRejectsBadArguments) {
  Generator gen(4);
  std::vector<std::shared_ptr<nn::Layer>> blocks = {mlp_block(4, 4, gen)};
  EXPECT_EQ(message_of([&] {
              measure_forward_costs(blocks, ones({2, 4}), 0);
            }),
            "[pipeline.partition] repeats is 0; it must be at least 1");
  EXPECT_EQ(message_of([&] { measure_forward_costs(blocks, Tensor(), 1); }),
            "[pipeline.partition] the sample input is undefined; pass one micro-batch of the "
            "first block's input");
  EXPECT_EQ(message_of([&] {
              measure_forward_costs({}, ones({2, 4}), 1);
            }),
            "[pipeline.partition] no blocks to measure");
  EXPECT_EQ(message_of([&] {
              measure_forward_costs({nullptr}, ones({2, 4}), 1);
            }),
            "[pipeline.partition] block 0 is null");
  // A shape mismatch surfaces as the block's own error.
  EXPECT_NE(message_of([&] { measure_forward_costs(blocks, ones({2, 5}), 1); }), "no error");
}

}  // namespace
}  // namespace strata::dist::pipeline
