// models/gpt_pipeline: a GPT split into stages builds, on each stage, exactly the whole
// model's parameters for its parts, and chaining the virtual stages gives the whole model's
// loss; balancing and bad shards.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/random.h"
#include "models/gpt_pipeline.h"
#include "tests/support/values.h"

namespace strata::models {
namespace {

GPTConfig tiny(bool tie = true) {
  return GPTConfig{.vocab_size = 11,
                   .block_size = 8,
                   .n_layer = 4,
                   .n_head = 2,
                   .n_embd = 8,
                   .dropout = 0.0,
                   .bias = true,
                   .tie_weights = tie};
}

TEST(GPTStages, EachStageHoldsTheWholeModelsValuesForItsParts) {
  for (bool tie : {true, false}) {
    Generator g_whole(7);
    GPT whole(tiny(tie), g_whole);
    nn::StateDict ref = whole.state_dict();
    auto ranges = gpt_stage_ranges(tiny(tie), 4, {});  // interleaved: 2 stages x 2 chunks
    size_t seen = 0;
    for (int stage : {0, 1}) {
      Generator g(7);
      GPT part(tiny(tie), g, gpt_stage_shard(ranges, 2, stage));
      EXPECT_EQ(g.state(), g_whole.state()) << "every shard advances the caller's stream alike";
      for (auto& [name, t] : part.state_dict()) {
        ASSERT_TRUE(ref.count(name)) << name;
        EXPECT_EQ(t.to_vector<float>(), ref.at(name).to_vector<float>()) << name;
        if (!(stage == 1 && name == "wte.weight")) ++seen;  // the tied copy is counted once
      }
    }
    EXPECT_EQ(seen, ref.size()) << "the stages together hold every tensor once";
  }
}

TEST(GPTStages, ShardsHoldTheirChunksBlocksEmbeddingAndHead) {
  auto ranges = gpt_stage_ranges(tiny(), 4, {1, 1, 1, 1});
  GPTShard s0 = gpt_stage_shard(ranges, 2, 0), s1 = gpt_stage_shard(ranges, 2, 1);
  EXPECT_TRUE(s0.embedding);
  EXPECT_FALSE(s0.head);
  EXPECT_EQ(s0.blocks, (std::vector<int64_t>{0, 2}));  // virtual stages 0 and 2
  EXPECT_FALSE(s1.embedding);
  EXPECT_TRUE(s1.head);
  EXPECT_EQ(s1.blocks, (std::vector<int64_t>{1, 3}));
}

TEST(GPTStages, AutomaticBalanceCountsEmbeddingAndHead) {
  // A large vocabulary makes the embedding and the head worth blocks: the first and last
  // stages get fewer blocks than the middle ones.
  GPTConfig c = tiny();
  c.n_layer = 8;
  c.vocab_size = 1200;  // (V + T) C = 9.7k and V C = 9.6k: each about 11 blocks of 872
  auto ranges = gpt_stage_ranges(c, 4, {});
  std::vector<int64_t> sizes;
  for (auto& r : ranges) sizes.push_back(r.end - r.begin);
  EXPECT_EQ(sizes.front(), 1);
  EXPECT_EQ(sizes.back(), 1);
  EXPECT_EQ(sizes[1] + sizes[2], 6);
  // Uniform cost (tiny vocabulary): an even split.
  auto even = gpt_stage_ranges(tiny(), 2, {});
  EXPECT_EQ(even[0], (dist::pipeline::StageRange{0, 2}));
  EXPECT_EQ(even[1], (dist::pipeline::StageRange{2, 4}));
}

TEST(GPTStages, ChainedVirtualStagesGiveTheWholeModelsLossAndGradients) {
  Generator gw(3), gp(3);
  GPT whole(tiny(), gw), all_parts(tiny(), gp);  // one process holding every stage
  auto ranges = gpt_stage_ranges(tiny(), 3, {2, 1, 1});
  Generator data(5);
  Tensor idx = randint(0, 11, {2, 8}, data), tgt = randint(0, 11, {2, 8}, data);
  Tensor h;
  for (int64_t vs = 0; vs < 3; ++vs) h = gpt_virtual_stage(all_parts, ranges, vs, h, idx, tgt);
  Tensor ref = whole.loss(idx, tgt);
  EXPECT_EQ(h.item(), ref.item());
  h.backward();
  ref.backward();
  auto a = whole.named_parameters(), b = all_parts.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.grad().to_vector<float>(), b[i].second.grad().to_vector<float>())
        << a[i].first;
  }
}

using strata::testing::message_of;

TEST(GPTStages, BadShardsAndRangesAreRefused) {
  Generator g(0);
  EXPECT_EQ(
      message_of([&] { GPT(tiny(), g, GPTShard{.embedding = true, .head = true, .blocks = {4}}); }),
      "[GPT] shard block index 4 is outside [0, 4)");
  EXPECT_EQ(message_of(
                [&] { GPT(tiny(), g, GPTShard{.embedding = false, .head = false, .blocks = {}}); }),
            "[GPT] the shard holds nothing: give it the embedding, the head or some blocks");
  EXPECT_EQ(message_of([] { gpt_stage_ranges(tiny(), 5, {}); }),
            "[GPT pipeline] 5 virtual stages need at least as many blocks; model.n_layer is 4: "
            "lower parallel.pp * parallel.virtual_stages or add layers");
  GPT last(tiny(), g, GPTShard{.embedding = false, .head = true, .blocks = {3}});
  EXPECT_EQ(message_of([&] {
              last.embed(zeros({1, 4}, DType::i64));
            }),
            "[GPT] embed: this shard has no embedding (it is not the first pipeline stage)");
  EXPECT_EQ(message_of([&] {
              last.run_blocks(zeros({1, 4, 8}), 2, 4);
            }),
            "[GPT] block h.2 is not held by this shard (a pipeline stage runs only its own "
            "blocks)");
}

}  // namespace
}  // namespace strata::models
