// Asynchronous checkpoint saving: the state is copied to host memory on the training thread,
// then written and committed by a background thread while training goes on.
#pragma once

#include <functional>
#include <future>
#include <string>

#include "io/checkpoint_dir.h"

namespace strata::io {

/// At most one save is in flight. While it is, the background thread is the process's only
/// HDF5 user: the serial HDF5 library is not thread-safe, so nothing else may call it then.
class AsyncCheckpointWriter {
 public:
  explicit AsyncCheckpointWriter(CheckpointDir dir) : dir_(std::move(dir)) {}
  /// Waits for a save in flight (its error, if any, is dropped: call wait() first).
  ~AsyncCheckpointWriter();
  AsyncCheckpointWriter(const AsyncCheckpointWriter&) = delete;
  AsyncCheckpointWriter& operator=(const AsyncCheckpointWriter&) = delete;

  /// Waits for the previous save (rethrowing its error), snapshots `ckpt` into host copies
  /// and starts committing it (CheckpointDir::save) in the background.
  void save(const Checkpoint& ckpt);
  /// As save(), but the background thread runs `write` on the snapshot instead (one phase of
  /// a multi-rank save: CheckpointDir::write_part or prepare); its result is what poll() and
  /// wait() return.
  using Job = std::function<std::string(const CheckpointDir&, const Checkpoint&)>;
  void start(const Checkpoint& ckpt, Job write);
  /// If the save in flight has finished: rethrows its error, or returns its path. Returns ""
  /// while it runs or when there is none. Call once per step so a failure stops the run.
  std::string poll();
  /// Waits for the save in flight; rethrows its error, else returns its path ("" if none).
  std::string wait();
  bool in_flight() const { return pending_.valid(); }

 private:
  std::string finish();
  CheckpointDir dir_;
  std::future<std::string> pending_;
  int64_t pending_step_ = 0;
};

/// A deep host copy of every tensor of `ckpt`, safe to write while training changes the
/// originals.
Checkpoint snapshot(const Checkpoint& ckpt);

}  // namespace strata::io
