// Data parallelism over a Module: every rank holds a replica, rank 0's state is broadcast at
// start, and gradients are averaged in buckets whose all-reduces start during backward.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "distributed/communicator.h"
#include "distributed/timeline.h"

namespace strata::dist {

struct DataParallelOptions {
  /// Gradient bytes per bucket; buckets fill in reverse registration order (the order
  /// backward produces gradients), so the first is launched while backward still runs.
  int64_t bucket_bytes = 25 << 20;
  /// The first bucket is smaller so that communication starts early in backward.
  int64_t first_bucket_bytes = 1 << 20;
  /// Copy rank 0's parameters and buffers to every rank at construction.
  bool broadcast_on_start = true;
  /// On one rank the gradients already are the average: leave them where they are. False
  /// sends them through the buckets and the communicator anyway (a test of a communicator).
  bool skip_single_rank = true;
};

struct DataParallelState;

/// Usage per step: forward, backward, finish_gradients(), optimizer step. For gradient
/// accumulation, run the first micro-steps' backward inside a no_sync() guard.
/// Parameters that get no gradient in a step never block the others: finish_gradients()
/// fills them in, and one that had no gradient on any rank keeps an undefined .grad.
class DataParallel {
 public:
  DataParallel(nn::Module& module, std::shared_ptr<Communicator> comm,
               const DataParallelOptions& options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// Copies rank 0's parameters and buffers to every rank (in place: handles stay valid).
  void broadcast_state();
  /// Copies rank 0's buffers (e.g. BatchNorm running statistics) to every rank.
  void broadcast_buffers();
  /// Launches the buckets that are still waiting, waits for all, and sets every parameter's
  /// .grad to the average over ranks. Call after backward and before the optimizer step.
  /// Inside no_sync() it does nothing (gradients stay local).
  void finish_gradients();

  /// While alive, backward accumulates gradients locally and nothing is communicated.
  class NoSync {
   public:
    explicit NoSync(DataParallelState& state);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DataParallelState& state_;
    bool previous_;
  };
  [[nodiscard]] NoSync no_sync();

  /// Records each bucket's all-reduce as a "comm" span (launch to observed completion) and
  /// finish_gradients()' waiting as a "wait" span; null stops recording.
  void set_timeline(std::shared_ptr<Timeline> timeline);

  Communicator& comm() const;
  nn::Module& module() const { return module_; }
  /// Parameter names in each bucket, in launch order.
  std::vector<std::vector<std::string>> bucket_layout() const;

 private:
  nn::Module& module_;
  std::shared_ptr<DataParallelState> state_;  // shared with the gradient hooks (weakly)
};

}  // namespace strata::dist
