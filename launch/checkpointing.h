// Saving and resuming a run: the state of TrainParts to and from io::Checkpoint, and the
// --resume policy (auto, a path, none).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "io/checkpoint.h"
#include "io/checkpoint_async.h"
#include "launch/checkpoint_state.h"
#include "launch/trainer.h"

namespace strata::launch {

/// Saves the training loop's checkpoints into checkpoint.dir (atomic commits that keep the
/// newest checkpoint.keep), on the calling thread or, with checkpoint.async, in the background.
/// Every rank that owns state writes its own file (launch/checkpoint_state.h); world rank 0
/// commits the main file only once every rank's part is durable (two-phase commit).
class Checkpointer {
 public:
  Checkpointer(const Json& cfg, const LaunchEnv& env);
  /// Call at every step boundary on every rank. While a background save is in flight the
  /// ranks agree (a small all-reduce) whether all parts are durable: then rank 0 commits.
  /// A failed save on any rank stops the run on every rank with its error.
  void poll();
  /// Checkpoints `parts` after `step` steps (a collective; the state is captured before this
  /// returns). A background save still in flight is finished and committed first.
  void save(TrainParts& parts, int64_t step, int64_t epoch);
  /// Finishes and commits a save in flight (end of training; a collective).
  void finish();

 private:
  void settle(bool block);
  void agree_and_commit(const std::string& error);
  void announce(const std::string& path, double seconds) const;
  const Json& cfg_;
  const LaunchEnv& env_;
  io::CheckpointDir dir_;
  std::unique_ptr<io::AsyncCheckpointWriter> async_;
  std::shared_ptr<dist::Communicator> world_;
  int64_t pending_ = -1;  // the step of the save being written (async), or -1
  size_t n_parts_ = 0;
  std::chrono::steady_clock::time_point started_;
};

/// Resolves --resume: "none" (or "") starts fresh, "auto" takes the newest valid checkpoint
/// in checkpoint.dir (moving damaged newer ones aside as *.damaged), any other value is a
/// checkpoint file or a folder searched like auto. Prints what it did on rank 0.
std::optional<io::Checkpoint> find_resume(const std::string& mode, const Json& cfg, bool rank0);

/// Drops the records of metrics.jsonl after `step`: a run that died after its last
/// checkpoint logged steps that the resumed run logs again.
void trim_metrics(const std::string& path, int64_t step);

}  // namespace strata::launch
