// GPT pipeline stages. Costs for automatic balancing are parameter counts, computed from the
// config so that no stage has to build blocks it does not own.
#include "models/gpt_pipeline.h"

#include "core/error.h"

namespace strata::models {

namespace dp = dist::pipeline;

std::vector<dp::StageRange> gpt_stage_ranges(const GPTConfig& cfg, int64_t virtual_stages,
                                             const std::vector<int64_t>& balance) {
  check(cfg.n_layer >= virtual_stages, "[GPT pipeline] ", virtual_stages,
        " virtual stages need at least as many blocks; model.n_layer is ", cfg.n_layer,
        ": lower parallel.pp * parallel.virtual_stages or add layers");
  if (!balance.empty()) {
    check(static_cast<int64_t>(balance.size()) == virtual_stages, "[config] parallel.balance has ",
          balance.size(), " entries but the pipeline has ", virtual_stages,
          " virtual stages (pp * virtual_stages); give one block count per virtual stage");
    return dp::partition_by_balance(cfg.n_layer, balance);
  }
  int64_t C = cfg.n_embd, V = cfg.vocab_size;
  // Linear weights 12 C^2, two layer norms 4 C, and the linear biases 9 C.
  int64_t block = 12 * C * C + 4 * C + (cfg.bias ? 9 * C : 0);
  std::vector<int64_t> costs(static_cast<size_t>(cfg.n_layer), block);
  costs.front() += (V + cfg.block_size) * C;  // wte and wpe
  costs.back() += V * C + 2 * C;              // the head (tied or not: its matmul) and ln_f
  return dp::partition_by_balance(cfg.n_layer,
                                  dp::balance_by_cost(costs, static_cast<int>(virtual_stages)));
}

GPTShard gpt_stage_shard(const std::vector<dp::StageRange>& ranges, int stages, int stage) {
  auto total = static_cast<int64_t>(ranges.size());
  check(stages >= 1 && total % stages == 0 && stage >= 0 && stage < stages, "[GPT pipeline] stage ",
        stage, " of ", stages, " does not fit ", total, " virtual stages");
  GPTShard shard;
  shard.embedding = stage == 0;
  shard.head = stage == stages - 1;
  shard.blocks.clear();
  // Chunks in order, and chunk c's blocks come after chunk c-1's: indices stay increasing.
  for (int64_t vs = stage; vs < total; vs += stages) {
    for (int64_t i = ranges[vs].begin; i < ranges[vs].end; ++i) shard.blocks.push_back(i);
  }
  return shard;
}

Tensor gpt_virtual_stage(GPT& model, const std::vector<dp::StageRange>& ranges, int64_t vs,
                         const Tensor& input, const Tensor& idx, const Tensor& targets) {
  auto last = static_cast<int64_t>(ranges.size()) - 1;
  check(vs >= 0 && vs <= last, "[GPT pipeline] virtual stage ", vs, " is outside [0, ", last, "]");
  Tensor h = vs == 0 ? model.embed(idx) : input;
  h = model.run_blocks(h, ranges[vs].begin, ranges[vs].end);
  return vs == last ? model.head_loss(h, targets) : h;
}

}  // namespace strata::models
