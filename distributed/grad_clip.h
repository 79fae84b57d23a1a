// Gradient norms, clipping and metric averaging that are correct across data-parallel ranks:
// replicated gradients (after DataParallel) need no communication, sharded ones (ZeRO) do.
#pragma once

#include <vector>

#include "distributed/communicator.h"

namespace strata::dist {

/// How the gradients passed to global_grad_norm are spread over the ranks of `comm`.
enum class GradSharding {
  replicated,  // every rank holds the same, complete gradients (DataParallel)
  sharded,     // each element lives on exactly one rank (ZeRO shards)
};

/// The p-norm (p = inf: the largest |g|) of all the gradients together, the same on every
/// rank. Collective when sharded; undefined tensors are skipped.
double global_grad_norm(const std::vector<Tensor>& grads, double norm_type, Communicator& comm,
                        GradSharding sharding);

/// torch.nn.utils.clip_grad_norm_ over ranks: scales every gradient of `params` by
/// min(1, max_norm / (total + 1e-6)) with total = global_grad_norm; returns total.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       Communicator& comm, GradSharding sharding);

/// The mean over ranks of a per-rank value (a loss of equal-sized local batches).
double mean_over_ranks(Communicator& comm, double value);
/// sum(value_r * weight_r) / sum(weight_r) over ranks: a metric of unequal local batches,
/// e.g. weighted_mean_over_ranks(comm, accuracy, batch_size). Zero total weight gives 0.
double weighted_mean_over_ranks(Communicator& comm, double value, double weight);
/// Element-wise sums over ranks of per-rank counters (correct predictions, tokens, ...).
std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& values);

}  // namespace strata::dist
