// Counter-based random numbers (Philox4x32-10). A Generator is just (seed, offset): element i
// of a draw uses counter offset + i/4, lane i%4, so CPU and CUDA kernels produce the same
// numbers and the state is two integers to checkpoint. There is no global generator.
#pragma once

#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace strata {

/// The Philox4x32-10 block for (key = seed, counter = (counter, stream)).
std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t counter, uint64_t stream = 0);

/// Maps 32 random bits to a float in [0, 1) (24-bit resolution) and a double in [0, 1).
inline float uniform_float(uint32_t bits) { return static_cast<float>(bits >> 8) * 0x1.0p-24f; }

class Generator {
 public:
  struct State {
    uint64_t seed = 0;
    uint64_t offset = 0;
    bool operator==(const State&) const = default;
  };

  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : state_{seed, offset} {}
  uint64_t seed() const { return state_.seed; }
  State state() const { return state_; }
  void set_state(State s) { state_ = s; }

  /// Reserves `counters` Philox blocks (4 values each) and returns the first counter.
  uint64_t reserve(uint64_t counters) {
    uint64_t base = state_.offset + replica_index_ * counters;
    state_.offset += replica_count_ * counters;
    return base;
  }
  /// Makes this generator replica `index` of `count` equal generators whose draws, put side
  /// by side, are the one draw of `count` times the size: each reserve takes the index-th
  /// slice of count x the blocks and every replica's offset moves past all of them. Data
  /// parallel replicas use it for dropout, so that N replicas mask their rows of the global
  /// batch exactly as one process would (exact when each draw is a multiple of 4 values).
  /// Not part of State: it follows the layout, so a run resumed on another dp size re-sets it.
  void set_replica(int64_t index, int64_t count);
  /// Reserves enough blocks for n values.
  uint64_t reserve_values(int64_t n) { return reserve((static_cast<uint64_t>(n) + 3) / 4); }
  /// One uniform double in [0, 1), for host-side decisions (shuffles, augmentation).
  double uniform();
  /// Uniform integer in [0, n).
  int64_t randint(int64_t n);

 private:
  State state_;
  uint64_t replica_index_ = 0, replica_count_ = 1;
};

/// Uniform in [lo, hi).
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::f32, double lo = 0,
            double hi = 1);
/// Normal(mean, std) by Box-Muller on lane pairs.
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::f32, double mean = 0,
             double std = 1);
/// Normal(mean, std) truncated to [a, b] (resampled by inverse CDF, as torch's trunc_normal_).
Tensor trunc_normal(const Shape& shape, Generator& gen, double mean, double std, double a, double b,
                    DType dtype = DType::f32);
/// Integers in [lo, hi) as i64.
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator& gen);
/// A random permutation of [0, n) as i64.
Tensor randperm(int64_t n, Generator& gen);
/// Bool mask, true with probability p.
Tensor bernoulli(const Shape& shape, double p, Generator& gen);

}  // namespace strata
