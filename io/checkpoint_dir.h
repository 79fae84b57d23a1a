// A folder of checkpoints: atomic two-phase commits (every part durable, then the main file's
// rename, then the `latest` pointer), retention of the newest K, and the newest valid one.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"

namespace strata::io {

class CheckpointDir {
 public:
  /// `keep` (>= 1) committed files are retained after each save.
  CheckpointDir(std::string dir, int64_t keep);
  const std::string& dir() const { return dir_; }

  /// Commits `ckpt` (a main file) as <dir>/ckpt-<step>.h5: prepare(), then commit().
  std::string save(const Checkpoint& ckpt) const;
  /// Phase 1 of a main file: removes what killed or failed saves left (temporaries, and
  /// parts of steps other than this one that no main file lists), then writes
  /// ckpt-<step>.h5.tmp and fsyncs it. Returns the temporary's path.
  std::string prepare(const Checkpoint& ckpt) const;
  /// Phase 2, once every part of the save is durable: renames ckpt-<step>.h5.tmp to
  /// ckpt-<step>.h5 and fsyncs the folder, replaces `latest` the same way, then removes
  /// checkpoints beyond the newest `keep` together with their parts. Returns the file's path.
  std::string commit(int64_t step) const;
  /// Writes rank ckpt.part_rank's part durably as <dir>/ckpt-<step>.part<R>.h5 (temporary,
  /// fsync, rename, folder fsync); it counts once a committed main file lists it.
  std::string write_part(const Checkpoint& ckpt) const;

  /// Committed checkpoint files (ckpt-<step>.h5), newest (highest step) first.
  std::vector<std::string> files() const;
  /// The path that `latest` names, or "" when there is no pointer.
  std::string latest() const;

  struct Found {
    std::string path;
    Checkpoint ckpt;
    std::vector<std::string> skipped;  // one message per newer file that failed to load
  };
  /// The newest checkpoint that reads and verifies, skipping damaged ones (reported in
  /// `skipped`); nullopt when the folder holds none that loads (`skipped` then in `errors`).
  std::optional<Found> newest_valid(std::vector<std::string>* errors = nullptr) const;

  /// The step of a file named ckpt-<step>.h5, or -1 for any other name.
  static int64_t step_of(const std::string& filename);
  /// Parses a part file's name, ckpt-<step>.part<rank>.h5; false for any other name.
  static bool parse_part(const std::string& filename, int64_t& step, int64_t& rank);

 private:
  void remove_leftovers(int64_t step) const;
  void prune() const;
  std::string dir_;
  int64_t keep_;
};

}  // namespace strata::io
