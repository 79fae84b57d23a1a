// ZeRO stage 1: the optimizer state is sharded over the data-parallel group. Gradients are
// reduce-scattered (averaged), each rank updates its shard, and the parameters are all-gathered.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/optim/optimizer.h"
#include "distributed/communicator.h"

namespace strata::dist {

struct ZeroOptions {
  /// Copy rank 0's parameters to every rank at construction.
  bool broadcast_on_start = true;
};

/// Builds the wrapped optimizer over this rank's shard tensors (one group per user group,
/// with the user group's lr, weight_decay and options), e.g.
///   [](auto groups) { return std::make_unique<optim::AdamW>(std::move(groups), {}); }
using OptimizerFactory =
    std::function<std::unique_ptr<optim::Optimizer>(std::vector<optim::ParamGroup>)>;

struct ZeroLayout;

/// Elements [offset, offset + values.numel()) of a flattened tensor of `shape`.
struct StateSlice {
  Shape shape;
  int64_t offset = 0;
  Tensor values;  // (n) 1-D
};

/// A rank's optimizer state keyed by parameter name (ZeroOptimizer::export_state).
struct ShardState {
  std::map<std::string, StateSlice> slices;  // "<param>/<slot>": this rank's piece of a slot
  std::map<std::string, Tensor> whole;       // 0-d per-parameter counters, and "step"
};

/// Replaces DataParallel plus an optimizer: backward accumulates local gradients (no hooks,
/// no communication), then step() averages them over ranks by reduce-scatter, updates the
/// shard this rank owns and all-gathers the parameters, so every replica ends equal.
/// The parameters (f32 or f64, one dtype) are laid end to end in group order, padded to a
/// multiple of the group size; rank r owns the r-th equal chunk, which may cut parameters.
/// The wrapped optimizer must update element-wise (SGD, Adam, AdamW, RMSprop, Adagrad);
/// LARS needs whole-parameter norms and is refused.
class ZeroOptimizer {
 public:
  ZeroOptimizer(std::vector<optim::ParamGroup> groups, std::shared_ptr<Communicator> comm,
                const OptimizerFactory& make, const ZeroOptions& options = {});
  ~ZeroOptimizer();
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  /// reduce_gradients() unless already done, then the shard update and the all-gather.
  void step();
  /// Averages the local gradients over ranks into this rank's shard gradients (collective).
  /// Parameters that had no gradient on any rank are skipped by the update, as a plain
  /// optimizer skips them.
  void reduce_gradients();
  /// Global-norm clipping of the averaged gradients (reduce_gradients() first if needed):
  /// the norm is all-reduced over shards. Returns the norm before clipping (torch's rule).
  double clip_grad_norm_(double max_norm, double norm_type = 2);
  /// Drops the gradients of the full parameters.
  void zero_grad();

  /// The optimizer over this rank's shard: its groups mirror the user's (schedulers set
  /// their lr here) and its state is this rank's part only.
  optim::Optimizer& inner() { return *inner_; }
  /// This rank's shard tensors (1-D pieces of parameters), in inner() group order.
  std::vector<Tensor> shard_parameters() const;
  /// Elements per rank (the padded flat size / group size).
  int64_t shard_numel() const;
  Communicator& comm() const { return *comm_; }
  /// Every parameter, in group order (the order export_state's `names` follow).
  const std::vector<Tensor>& parameters() const;

  /// This rank's optimizer state by parameter name (`names[i]` names parameters()[i]), so that
  /// a checkpoint survives another dp size or partition: per-element slots ("exp_avg") as
  /// slices of the flattened parameter, per-parameter counters (0-d, Adam's "step") from the
  /// rank that holds the parameter's first element only, and the step count "step".
  ShardState export_state(const std::vector<std::string>& names) const;
  /// Loads full per-parameter state keyed "<param>/<slot>" plus "step" (written by any dp
  /// size, ZeRO or not): this rank keeps its pieces. Errors name the key and the parameter.
  void import_state(const std::vector<std::string>& names,
                    const std::map<std::string, Tensor>& state);

 private:
  void gather_parameters();
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<ZeroLayout> layout_;
  std::unique_ptr<optim::Optimizer> inner_;
  bool reduced_ = false;
};

}  // namespace strata::dist
