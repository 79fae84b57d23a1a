// Stage partitioning: explicit balance lists, the min-max split by cost and by parameter
// count, stage modules sharing the blocks, and the errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/nn/activation.h"
#include "core/nn/linear.h"
#include "distributed/pipeline/partition.h"

namespace strata::dist::pipeline {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(PipelinePartition, ExplicitBalance) {
  EXPECT_EQ(partition_by_balance(6, {1, 3, 2}), (std::vector<StageRange>{{0, 1}, {1, 4}, {4, 6}}));
  EXPECT_EQ(error_of([] {
              partition_by_balance(6, {2, 2});
            }),
            "[pipeline.partition] balance {2, 2} sums to 4 but the model has 6 blocks; the counts "
            "must add up to 6");
  EXPECT_EQ(
      error_of([] {
        partition_by_balance(3, {3, 0});
      }),
      "[pipeline.partition] balance {3, 0} gives stage 1 0 blocks; every stage needs at least "
      "one");
  EXPECT_EQ(error_of([] { partition_by_balance(3, {}); }),
            "[pipeline.partition] the balance list is empty; give one block count per stage");
}

TEST(PipelinePartition, BalancesCostMinimisingTheLargestStage) {
  EXPECT_EQ(balance_by_cost({1, 1, 1, 1}, 2), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(balance_by_cost({4, 1, 1, 1, 1}, 2), (std::vector<int64_t>{1, 4}));
  // Stage costs 15, 13, 17: no split has a smaller largest stage.
  EXPECT_EQ(balance_by_cost({1, 2, 3, 4, 5, 6, 7, 8, 9}, 3), (std::vector<int64_t>{5, 2, 2}));
  EXPECT_EQ(balance_by_cost({5, 5, 5}, 3), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(balance_by_cost({0, 0, 0, 0}, 1), (std::vector<int64_t>{4}));
  EXPECT_EQ(error_of([] {
              balance_by_cost({1, 1}, 3);
            }),
            "[pipeline.partition] cannot split 2 blocks into 3 stages: every stage needs at least "
            "one block; use at most 2 stages");
  EXPECT_EQ(error_of([] {
              balance_by_cost({1, -1}, 1);
            }),
            "[pipeline.partition] block 1 has negative cost -1");
  EXPECT_EQ(error_of([] { balance_by_cost({1}, 0); }),
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
  EXPECT_EQ(error_of([&] {
              stage_module(blocks, {3, 7});
            }),
            "[pipeline.partition] stage range [3, 7) is not a non-empty range of the 5 blocks");
}

}  // namespace
}  // namespace strata::dist::pipeline
