// Runs one stage's schedule: forward and backward of every micro-batch through this stage's
// model chunks, with activations and gradients exchanged with the neighbouring stages.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/random.h"
#include "distributed/communicator.h"
#include "distributed/pipeline/links.h"
#include "distributed/pipeline/p2p.h"
#include "distributed/pipeline/schedule.h"
#include "distributed/timeline.h"

namespace strata::dist::pipeline {

/// One model chunk of this stage: maps the received activation (undefined on virtual stage
/// 0, which reads micro-batch `mb`'s data itself) to the activation it sends on, or on the
/// last virtual stage to the micro-batch's mean loss (0-d).
using ChunkFn = std::function<Tensor(const Tensor& input, int64_t microbatch)>;

/// Optional behaviour of the executor; the defaults give plain execution.
struct ExecutorOptions {
  /// Activation recomputation: each forward runs without recording the graph and keeps only
  /// its input; the chunk's backward first re-runs the forward with the graph. One extra
  /// forward per micro-batch buys holding one activation per micro-batch instead of a graph.
  bool recompute = false;
  /// generators[c]: the random streams chunk c draws from (its dropout layers). Their state
  /// is saved before each forward and replayed by the recomputation, so that it draws the
  /// same masks. Empty, or one list per chunk; the generators must outlive the executor.
  std::vector<std::vector<Generator*>> generators;
  /// When set, each chunk forward and backward is a "compute" span and each blocking receive
  /// a "wait" span (the pipeline bench computes bubbles from them).
  std::shared_ptr<Timeline> timeline;
  /// Multiplies each micro-batch loss's backward seed (fp16 dynamic loss scaling); the
  /// returned loss is not scaled.
  double loss_scale = 1.0;
};

/// Usage per step: zero the gradients, run(), then the optimizer step. `comm` holds the
/// pipeline's stages as its ranks (rank = stage) and must outlive the executor.
class PipelineExecutor {
 public:
  /// chunks[c] runs virtual stage c * stages + rank (options.virtual_stages chunks). A
  /// collective over `comm`: it builds the links to the neighbouring stages (PeerLinks).
  PipelineExecutor(Communicator& comm, const ScheduleOptions& options, std::vector<ChunkFn> chunks,
                   ExecutorOptions executor_options = {});

  /// Runs this stage's actions for one step. Parameter gradients accumulate into .grad as
  /// those of the mean loss over micro-batches (each micro-batch's loss weighted 1/m).
  /// Returns that mean loss on every stage (broadcast from the last stage).
  double run();

  /// Sets ExecutorOptions::loss_scale for the next run() (the scale changes between steps).
  void set_loss_scale(double scale) { exec_.loss_scale = scale; }

  const std::vector<Action>& actions() const { return actions_; }
  /// The largest number of micro-batch activations this stage held at once in the last run.
  int64_t peak_live_microbatches() const { return peak_live_; }

 private:
  struct StepState;
  void execute(const Action& a, StepState& st);
  void forward(const Action& a, StepState& st);
  void backward(const Action& a, StepState& st);
  /// Re-runs a forward with the graph; returns the backward's root and its seed gradient.
  std::pair<Tensor, Tensor> recompute(const Action& a, StepState& st);
  Tensor input_of(const Action& a, StepState& st) const;
  bool is_last(int64_t chunk) const;
  std::vector<Generator::State> rng_state(int64_t chunk) const;
  void set_rng_state(int64_t chunk, const std::vector<Generator::State>& states);

  Communicator& comm_;
  std::unique_ptr<PeerLinks> links_;  // to the neighbouring stages (none with one stage)
  ScheduleOptions options_;
  std::vector<ChunkFn> chunks_;
  ExecutorOptions exec_;
  std::vector<Action> actions_;
  int64_t peak_live_ = 0;
};

}  // namespace strata::dist::pipeline
