// Global order from (seed, epoch) via Philox, so any dp size sees the same global sequence.
#include "io/sampler.h"

#include "core/random.h"

namespace strata::io {

Sampler::Sampler(int64_t size, uint64_t seed, bool shuffle, int rank, int world)
    : size_(size), seed_(seed), shuffle_(shuffle), rank_(rank), world_(world) {
  check(size > 0, "[sampler] the dataset is empty");
  check(world >= 1 && rank >= 0 && rank < world, "[sampler] rank ", rank, " of world ", world,
        " is invalid");
  build_order();
}

void Sampler::build_order() {
  std::vector<int64_t> global(size_);
  if (shuffle_) {
    // One generator per epoch: the order does not depend on how far earlier epochs got.
    Generator gen(seed_, static_cast<uint64_t>(state_.epoch) << 40);
    global = randperm(size_, gen).to_vector<int64_t>();
  } else {
    for (int64_t i = 0; i < size_; ++i) global[i] = i;
  }
  int64_t per_rank = size_ / world_;
  order_.clear();
  for (int64_t i = 0; i < per_rank; ++i) order_.push_back(global[i * world_ + rank_]);
}

std::vector<int64_t> Sampler::next(int64_t batch) {
  int64_t end = std::min<int64_t>(state_.cursor + batch, shard_size());
  std::vector<int64_t> out(order_.begin() + state_.cursor, order_.begin() + end);
  state_.cursor = end;
  return out;
}

void Sampler::next_epoch() {
  ++state_.epoch;
  state_.cursor = 0;
  build_order();
}

void Sampler::set_state(State s) {
  check(s.cursor >= 0 && s.epoch >= 0, "[sampler] invalid saved state (epoch ", s.epoch,
        ", cursor ", s.cursor, ")");
  state_ = s;
  build_order();
  check(s.cursor <= shard_size(), "[sampler] saved cursor ", s.cursor, " exceeds the shard of ",
        shard_size(), " samples; was the dataset changed?");
}

}  // namespace strata::io
