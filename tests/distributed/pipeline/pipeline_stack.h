// A pipelined MLP with dropout, built identically on every rank: one stage's chunks, its
// parameters and its dropout streams (recomputation and activation-memory tests).
#pragma once

#include <memory>
#include <vector>

#include "core/nn/container.h"
#include "core/random.h"
#include "distributed/pipeline/executor.h"

namespace strata::dist::testing {

struct StackOptions {
  int64_t width = 32;       // W; each block is Linear(W, 4W), GELU, Dropout, Linear(4W, W)
  int64_t blocks = 8;       // blocks - 1 such blocks and a Linear(W, 2) head
  double dropout = 0.2;     // 0 disables dropout
  int64_t microbatch = 16;  // rows per micro-batch
};

/// This stage's share of the stack for `schedule` (chunk c runs virtual stage c * p + rank).
struct PipelineStage {
  std::vector<std::shared_ptr<nn::Sequential>> modules;  // one per chunk
  std::vector<pipeline::ChunkFn> chunks;  // mean squared error on the last virtual stage
  std::vector<Tensor> params;
  std::vector<std::vector<Generator*>> generators;  // per chunk: its dropout streams
  Tensor x;                                         // (m * microbatch, W)
  Tensor y;                                         // (m * microbatch, 2)
};

PipelineStage make_stage(const pipeline::ScheduleOptions& schedule, int rank,
                         const StackOptions& options);

}  // namespace strata::dist::testing
