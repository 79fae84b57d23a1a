// Saving and resuming a run: the state of TrainParts to and from io::Checkpoint, and the
// --resume policy (auto, a path, none).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "io/checkpoint.h"
#include "io/checkpoint_async.h"
#include "launch/trainer.h"

namespace strata::launch {

/// A checkpoint of `parts` after `step` optimizer steps. Tensors are the live state (no
/// copies): write it before the next step changes them. A collective: every rank calls it at
/// the same step boundary, and each gets every rank's random streams and sampler positions.
io::Checkpoint capture_checkpoint(TrainParts& parts, const Json& cfg, const LaunchEnv& env,
                                  int64_t step, int64_t epoch);

/// Saves the training loop's checkpoints into checkpoint.dir (atomic commits that keep the
/// newest checkpoint.keep), on the calling thread or, with checkpoint.async, in the background.
class Checkpointer {
 public:
  /// Only rank 0 writes; save() is a collective (every rank's streams are gathered).
  Checkpointer(const Json& cfg, const LaunchEnv& env);
  /// Call at every step boundary: reports a finished background save, or stops the run with
  /// its error.
  void poll();
  /// Checkpoints `parts` after `step` steps (the state is captured before this returns).
  void save(TrainParts& parts, int64_t step, int64_t epoch);
  /// Waits for a save in flight (end of training).
  void finish();

 private:
  void announce(const std::string& path, double seconds) const;
  const Json& cfg_;
  const LaunchEnv& env_;
  bool enabled_;
  io::CheckpointDir dir_;
  std::unique_ptr<io::AsyncCheckpointWriter> async_;
  std::chrono::steady_clock::time_point started_;
};

/// Loads everything in `ckpt` into `parts`. Names must match exactly (model, optimizer,
/// random streams, samplers, extra state); errors start with "[resume]" and name the key.
/// Each rank restores its own streams; on another world size samplers continue at the same
/// global position (docs/checkpoint-format.md, "Resuming on another layout").
void restore_checkpoint(TrainParts& parts, const io::Checkpoint& ckpt);

/// Resolves --resume: "none" (or "") starts fresh, "auto" takes the newest valid checkpoint
/// in checkpoint.dir (moving damaged newer ones aside as *.damaged), any other value is a
/// checkpoint file or a folder searched like auto. Prints what it did on rank 0.
std::optional<io::Checkpoint> find_resume(const std::string& mode, const Json& cfg, bool rank0);

/// Drops the records of metrics.jsonl after `step`: a run that died after its last
/// checkpoint logged steps that the resumed run logs again.
void trim_metrics(const std::string& path, int64_t step);

}  // namespace strata::launch
