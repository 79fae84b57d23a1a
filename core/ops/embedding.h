// Embedding lookup and dropout.
#pragma once

#include "core/random.h"
#include "core/tensor.h"

namespace strata {

/// weight (V, D), indices i64 of any shape -> (..., D). Indices out of [0, V) are an Error
/// naming the bad index and V; padding_idx rows (>= 0; -1 for none) receive no gradient.
/// Backward is a scatter-add over rows (deterministic: threads split columns).
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);
/// Inverted dropout: keeps element i when uniform(philox(seed, base + i/4)[lane i%4]) < 1 - p,
/// with base = gen.reserve_values(numel) (the same draw as bernoulli(shape, 1 - p, gen) and
/// as the CUDA kernel), and scales kept values by 1/(1-p). Identity when !training or p == 0;
/// zeros when p == 1 (neither draws from gen). p outside [0, 1] is an Error.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace strata
