// A GPT split into pipeline stages: which blocks each virtual stage runs, what each stage
// builds (only its own parameters), and one virtual stage's forward on a micro-batch.
#pragma once

#include <cstdint>
#include <vector>

#include "distributed/pipeline/partition.h"
#include "models/gpt.h"

namespace strata::models {

/// The blocks of each of `virtual_stages` virtual stages: by `balance` (blocks per virtual
/// stage) or, when it is empty, balanced by parameter count with the embedding counted on the
/// first block and the output head on the last.
std::vector<dist::pipeline::StageRange> gpt_stage_ranges(const GPTConfig& cfg,
                                                         int64_t virtual_stages,
                                                         const std::vector<int64_t>& balance);

/// What `stage` of `stages` builds when virtual stage vs runs on stage vs % stages: the
/// embedding on stage 0, the head on the last stage, and the blocks of its virtual stages.
GPTShard gpt_stage_shard(const std::vector<dist::pipeline::StageRange>& ranges, int stages,
                         int stage);

/// Virtual stage `vs` of a (sharded) GPT on one micro-batch: the first embeds `idx`, each
/// runs its blocks on the previous one's output `input`, and the last returns the mean
/// cross-entropy against `targets` (0-d).
Tensor gpt_virtual_stage(GPT& model, const std::vector<dist::pipeline::StageRange>& ranges,
                         int64_t vs, const Tensor& input, const Tensor& idx, const Tensor& targets);

}  // namespace strata::models
