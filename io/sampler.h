// The sample order: one global permutation per (seed, epoch), sharded by data-parallel rank,
// with a cursor that can be saved and restored.
#pragma once

#include <cstdint>
#include <vector>

namespace strata::io {

class Sampler {
 public:
  struct State {
    int64_t epoch = 0;
    int64_t cursor = 0;  // samples of this rank's shard already handed out this epoch
  };
  /// `size` samples; each rank takes every world-th sample of the global order, and
  /// drop_last trims the order so every rank gets the same count.
  Sampler(int64_t size, uint64_t seed, bool shuffle, int rank = 0, int world = 1);
  /// The next `batch` indices of this rank; returns fewer (possibly zero) at epoch end.
  std::vector<int64_t> next(int64_t batch);
  /// Starts the next epoch (a new permutation).
  void next_epoch();
  int64_t epoch() const { return state_.epoch; }
  int64_t shard_size() const { return static_cast<int64_t>(order_.size()); }
  State state() const { return state_; }
  void set_state(State s);

 private:
  void build_order();
  int64_t size_;
  uint64_t seed_;
  bool shuffle_;
  int rank_, world_;
  State state_;
  std::vector<int64_t> order_;  // this rank's shard of the epoch's global order
};

}  // namespace strata::io
