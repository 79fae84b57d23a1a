// The generic training loop: steps, learning-rate schedule, clipping, evaluation, metrics
// and the progress line.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/optim/loss_scaler.h"
#include "core/optim/optimizer.h"
#include "distributed/communicator.h"
#include "distributed/data_parallel.h"
#include "distributed/pipeline/executor.h"
#include "distributed/timeline.h"
#include "distributed/zero.h"
#include "io/checkpoint.h"
#include "launch/config.h"
#include "launch/env.h"
#include "launch/mesh.h"
#include "launch/task.h"

namespace strata::launch {

struct TrainResult {
  int64_t steps = 0;
  double last_loss = 0;
  Json final_eval;
  double seconds = 0;
  bool stopped = false;  // ended early, after checkpointing: train.stop_at_step or a signal
  int signal = 0;        // the stop signal (SIGUSR1, SIGTERM) that ended the run, or 0
};

struct TrainParts {
  // The mesh (parallel.pp stages x dp replicas; world rank = stage * dp + dp rank):
  // (comm and pipe move the model's tensors: NCCL on CUDA with several ranks; world holds
  // host tensors: signals, checkpoint agreement, fp16 skip verdicts.)
  std::shared_ptr<dist::Communicator> comm;   // this stage's data-parallel group (size dp)
  std::shared_ptr<dist::Communicator> world;  // every rank (the same group as comm when pp = 1)
  std::shared_ptr<dist::Communicator> pipe;   // this replica's stages, rank = stage (size pp)
  std::unique_ptr<Task> task;
  // Plain data parallelism: dp averages the gradients, optimizer updates every parameter.
  std::unique_ptr<dist::DataParallel> dp;
  std::unique_ptr<optim::Optimizer> optimizer;
  // parallel.zero: replaces dp and optimizer (both null then); its inner() optimizer holds
  // this rank's shard of the state.
  std::unique_ptr<dist::ZeroOptimizer> zero;
  std::function<double(int64_t)> lr_at;      // learning rate for a 0-based step
  std::shared_ptr<dist::Timeline> timeline;  // trace.path: this rank's spans; else null
  // Names in model().state_dict() that another stage owns and checkpoints: the last stage's
  // copy of a tied input embedding. Their values equal the owner's at every step boundary.
  std::set<std::string> tied_copies;

  // Pipeline parallelism (parallel.pp > 1; else pipeline is null).
  Mesh mesh;
  std::unique_ptr<dist::pipeline::PipelineExecutor> pipeline;
  /// What the optimizer updates: the model's trainable parameters minus tied copies.
  std::vector<Tensor> params;
  /// Tied weights on the first and last stage (owner's and copy): their gradients are summed
  /// over mesh.tie, and after the step the owner's values are broadcast to the copy.
  std::vector<Tensor> tied;

  // train.amp (set by train() from the config): the autocast dtype of forward and loss, or
  // nullopt for f32 training; with fp16 also the loss scaler and the steps it skipped (inf or
  // NaN gradients), both checkpointed.
  std::optional<DType> autocast;
  std::optional<optim::LossScaler> scaler;
  int64_t skipped_steps = 0;

  /// The optimizer whose groups take the learning rate (ZeRO: the shard optimizer).
  optim::Optimizer& step_optimizer() { return zero ? zero->inner() : *optimizer; }
  /// The data-parallel group for host tensors (logged losses, random-stream states): comm
  /// itself on the CPU, its MPI twin when comm is NCCL (device: cuda).
  dist::Communicator& host_comm() const { return mesh.dp_host ? *mesh.dp_host : *comm; }
};

/// The number of optimizer steps a run makes: train.max_steps, else epochs * steps per epoch.
int64_t total_steps(const Json& cfg, const Task& task);

/// Runs training as configured (train.epochs or train.max_steps), writing
/// <run_dir>/metrics.jsonl and printing progress on rank 0 (log.per_rank: every rank also
/// writes <run_dir>/rank<N>.log; trace.path: <path>.rank<N>.json at the end). With `resume`, the
/// run continues from that checkpoint's step exactly as if it had never stopped; checkpoints are
/// saved every checkpoint.every steps, at the end and at train.stop_at_step. A stop signal
/// (launch/signals.h) ends the run at the next step boundary, after a checkpoint.
TrainResult train(TrainParts& parts, const Json& cfg, const LaunchEnv& env,
                  const io::Checkpoint* resume = nullptr);

}  // namespace strata::launch
