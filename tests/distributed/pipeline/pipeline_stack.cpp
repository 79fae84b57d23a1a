// The dropout MLP stack of pipeline_stack.h: blocks split by parameter count, data from a
// fixed seed, each dropout layer with its own stream so that a stage owns its randomness.
#include "tests/distributed/pipeline/pipeline_stack.h"

#include "core/nn/activation.h"
#include "core/nn/embedding.h"
#include "core/nn/linear.h"
#include "core/ops/loss.h"
#include "distributed/pipeline/partition.h"

namespace strata::dist::testing {
namespace {

struct Block {
  std::shared_ptr<nn::Layer> layer;
  std::shared_ptr<nn::Dropout> dropout;  // null for the head or without dropout
};

std::vector<Block> make_blocks(const StackOptions& o) {
  Generator gen(11);
  std::vector<Block> blocks;
  int64_t w = o.width;
  for (int64_t i = 0; i + 1 < o.blocks; ++i) {
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{w, 4 * w}, gen));
    seq->push_back(std::make_shared<nn::GELU>());
    std::shared_ptr<nn::Dropout> drop;
    if (o.dropout > 0) {
      drop = std::make_shared<nn::Dropout>(nn::DropoutOptions{o.dropout}, Generator(1000 + i));
      seq->push_back(drop);
    }
    seq->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{4 * w, w}, gen));
    blocks.push_back({seq, drop});
  }
  blocks.push_back({std::make_shared<nn::Linear>(nn::LinearOptions{w, 2}, gen), nullptr});
  return blocks;
}

}  // namespace

PipelineStage make_stage(const pipeline::ScheduleOptions& schedule, int rank,
                         const StackOptions& options) {
  int p = schedule.stages;
  int64_t v = schedule.virtual_stages, mb = options.microbatch;
  std::vector<Block> blocks = make_blocks(options);
  std::vector<std::shared_ptr<nn::Layer>> layers;
  for (const Block& b : blocks) layers.push_back(b.layer);
  auto ranges = pipeline::partition_by_balance(
      options.blocks, pipeline::balance_by_parameters(layers, static_cast<int>(p * v)));

  PipelineStage st;
  Generator data(5);
  st.x = randn({schedule.microbatches * mb, options.width}, data);
  st.y = randn({schedule.microbatches * mb, 2}, data);
  for (int64_t c = 0; c < v; ++c) {
    int64_t vs = pipeline::virtual_stage_of(p, rank, c);
    auto module = pipeline::stage_module(layers, ranges[vs]);
    std::vector<Generator*> gens;
    for (int64_t b = ranges[vs].begin; b < ranges[vs].end; ++b) {
      if (blocks[b].dropout) gens.push_back(&blocks[b].dropout->generator());
    }
    for (const Tensor& t : module->parameters()) st.params.push_back(t);
    bool first = vs == 0, last = vs == p * v - 1;
    Tensor x = st.x, y = st.y;
    st.chunks.push_back([=](const Tensor& input, int64_t m) {
      Tensor out = module->forward(first ? x.slice(0, m * mb, (m + 1) * mb) : input);
      return last ? mse_loss(out, y.slice(0, m * mb, (m + 1) * mb)) : out;
    });
    st.modules.push_back(module);
    st.generators.push_back(gens);
  }
  return st;
}

}  // namespace strata::dist::testing
