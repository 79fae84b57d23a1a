// Contiguous stage partitioning: explicit balance lists, an exact min-max split by cost
// (dynamic programming over split points; block counts are small), and per-block forward
// times measured on a sample batch as such a cost.
#include "distributed/pipeline/partition.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/autograd/grad_mode.h"
#include "core/error.h"

namespace strata::dist::pipeline {
namespace {

std::string list_str(const std::vector<int64_t>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "}";
}

}  // namespace

std::vector<StageRange> partition_by_balance(int64_t num_blocks,
                                             const std::vector<int64_t>& balance) {
  check(!balance.empty(), "[pipeline.partition] the balance list is empty; give one block count ",
        "per stage");
  int64_t total = 0;
  for (size_t s = 0; s < balance.size(); ++s) {
    check(balance[s] >= 1, "[pipeline.partition] balance ", list_str(balance), " gives stage ", s,
          " ", balance[s], " blocks; every stage needs at least one");
    total += balance[s];
  }
  check(total == num_blocks, "[pipeline.partition] balance ", list_str(balance), " sums to ", total,
        " but the model has ", num_blocks, " blocks; the counts must add up to ", num_blocks);
  std::vector<StageRange> out;
  int64_t begin = 0;
  for (int64_t n : balance) {
    out.push_back({begin, begin + n});
    begin += n;
  }
  return out;
}

std::vector<int64_t> balance_by_cost(const std::vector<int64_t>& costs, int stages) {
  auto n = static_cast<int64_t>(costs.size());
  check(stages >= 1, "[pipeline.partition] stages is ", stages, "; it must be at least 1");
  check(n >= stages, "[pipeline.partition] cannot split ", n, " blocks into ", stages,
        " stages: every stage needs at least one block; use at most ", n, " stages");
  std::vector<int64_t> prefix(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    check(costs[i] >= 0, "[pipeline.partition] block ", i, " has negative cost ", costs[i]);
    prefix[i + 1] = prefix[i] + costs[i];
  }
  constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
  // best[s][i]: the smallest largest-stage cost of the first i blocks in s stages; cut[s][i]
  // the start of the last of those stages.
  std::vector<std::vector<int64_t>> best(stages + 1, std::vector<int64_t>(n + 1, kInf));
  std::vector<std::vector<int64_t>> cut(stages + 1, std::vector<int64_t>(n + 1, 0));
  best[0][0] = 0;
  for (int s = 1; s <= stages; ++s) {
    for (int64_t i = s; i <= n; ++i) {
      for (int64_t j = s - 1; j < i; ++j) {  // the last stage is blocks [j, i)
        if (best[s - 1][j] == kInf) continue;
        int64_t c = std::max(best[s - 1][j], prefix[i] - prefix[j]);
        if (c < best[s][i]) {
          best[s][i] = c;
          cut[s][i] = j;
        }
      }
    }
  }
  std::vector<int64_t> balance(stages);
  for (int64_t s = stages, i = n; s >= 1; --s) {
    balance[s - 1] = i - cut[s][i];
    i = cut[s][i];
  }
  return balance;
}

std::vector<int64_t> balance_by_parameters(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                           int stages) {
  std::vector<int64_t> costs;
  for (const auto& b : blocks) {
    check(b != nullptr, "[pipeline.partition] block ", costs.size(), " is null");
    costs.push_back(b->num_parameters());
  }
  return balance_by_cost(costs, stages);
}

std::vector<int64_t> measure_forward_costs(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                           const Tensor& sample_input, int repeats) {
  using Clock = std::chrono::steady_clock;
  check(!blocks.empty(), "[pipeline.partition] no blocks to measure");
  check(sample_input.defined(), "[pipeline.partition] the sample input is undefined; pass one ",
        "micro-batch of the first block's input");
  check(repeats >= 1, "[pipeline.partition] repeats is ", repeats, "; it must be at least 1");
  NoGradGuard no_grad;
  // Warm-up, which also gives each block its input.
  std::vector<Tensor> inputs{sample_input};
  for (size_t i = 0; i < blocks.size(); ++i) {
    check(blocks[i] != nullptr, "[pipeline.partition] block ", i, " is null");
    inputs.push_back(blocks[i]->forward(inputs.back()));
  }
  std::vector<int64_t> costs(blocks.size(), std::numeric_limits<int64_t>::max());
  for (int r = 0; r < repeats; ++r) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto start = Clock::now();
      Tensor out = blocks[i]->forward(inputs[i]);
      int64_t ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
      costs[i] = std::min(costs[i], ns);
    }
  }
  return costs;
}

std::vector<int64_t> balance_by_forward_cost(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                             const Tensor& sample_input, int stages, int repeats) {
  return balance_by_cost(measure_forward_costs(blocks, sample_input, repeats), stages);
}

std::shared_ptr<nn::Sequential> stage_module(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                             const StageRange& range) {
  auto n = static_cast<int64_t>(blocks.size());
  check(range.begin >= 0 && range.begin < range.end && range.end <= n,
        "[pipeline.partition] stage range [", range.begin, ", ", range.end,
        ") is not a non-empty range of the ", n, " blocks");
  auto seq = std::make_shared<nn::Sequential>();
  for (int64_t i = range.begin; i < range.end; ++i) seq->push_back(blocks[i]);
  return seq;
}

}  // namespace strata::dist::pipeline
