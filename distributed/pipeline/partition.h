// Splitting a model's blocks into contiguous pipeline stages: by an explicit balance list or
// automatically, balancing a per-block cost such as the parameter count or the measured
// forward time.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/nn/container.h"

namespace strata::dist::pipeline {

/// Blocks [begin, end) of one stage.
struct StageRange {
  int64_t begin;
  int64_t end;
  bool operator==(const StageRange& other) const = default;
};

/// The ranges given by `balance` (blocks per stage, each >= 1, summing to num_blocks).
std::vector<StageRange> partition_by_balance(int64_t num_blocks,
                                             const std::vector<int64_t>& balance);

/// The balance list of `stages` contiguous, non-empty stages that minimises the largest
/// stage's total cost (among equal splits, the last stage's start is the earliest that
/// reaches it). costs[i] >= 0 is block i's cost.
std::vector<int64_t> balance_by_cost(const std::vector<int64_t>& costs, int stages);

/// balance_by_cost with each block's parameter count as its cost.
std::vector<int64_t> balance_by_parameters(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                           int stages);

/// Each block's forward time in nanoseconds on a batch like `sample_input` (block i runs on
/// block i-1's output), the fastest of `repeats` timed runs after one warm-up, without
/// recording the graph. The fastest run is the one least disturbed by other processes; on a
/// machine busy with other work, time with one OpenMP thread (stalled threads add noise).
std::vector<int64_t> measure_forward_costs(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                           const Tensor& sample_input, int repeats = 5);

/// balance_by_cost with the measured forward time of each block as its cost.
std::vector<int64_t> balance_by_forward_cost(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                             const Tensor& sample_input, int stages,
                                             int repeats = 5);

/// A Sequential holding (sharing) blocks [range.begin, range.end).
std::shared_ptr<nn::Sequential> stage_module(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                             const StageRange& range);

}  // namespace strata::dist::pipeline
