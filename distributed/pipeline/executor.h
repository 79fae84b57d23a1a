// Runs one stage's schedule: forward and backward of every micro-batch through this stage's
// model chunks, with activations and gradients exchanged with the neighbouring stages.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/pipeline/p2p.h"
#include "distributed/pipeline/schedule.h"

namespace strata::dist::pipeline {

/// One model chunk of this stage: maps the received activation (undefined on virtual stage
/// 0, which reads micro-batch `mb`'s data itself) to the activation it sends on, or on the
/// last virtual stage to the micro-batch's mean loss (0-d).
using ChunkFn = std::function<Tensor(const Tensor& input, int64_t microbatch)>;

/// Usage per step: zero the gradients, run(), then the optimizer step. `comm` holds the
/// pipeline's stages as its ranks (rank = stage) and must outlive the executor.
class PipelineExecutor {
 public:
  /// chunks[c] runs virtual stage c * stages + rank (options.virtual_stages chunks).
  PipelineExecutor(Communicator& comm, const ScheduleOptions& options, std::vector<ChunkFn> chunks);

  /// Runs this stage's actions for one step. Parameter gradients accumulate into .grad as
  /// those of the mean loss over micro-batches (each micro-batch's loss weighted 1/m).
  /// Returns that mean loss on every stage (broadcast from the last stage).
  double run();

  const std::vector<Action>& actions() const { return actions_; }
  /// The largest number of micro-batch activations this stage held at once in the last run.
  int64_t peak_live_microbatches() const { return peak_live_; }

 private:
  struct StepState;
  void execute(const Action& a, StepState& st);
  void forward(const Action& a, StepState& st);
  void backward(const Action& a, StepState& st);

  Communicator& comm_;
  ScheduleOptions options_;
  std::vector<ChunkFn> chunks_;
  std::vector<Action> actions_;
  int64_t peak_live_ = 0;
};

}  // namespace strata::dist::pipeline
