// A folder of checkpoints: atomic commits (temporary name, fsync, rename, then the `latest`
// pointer), retention of the newest K, and finding the newest valid checkpoint to resume.
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

  /// Commits `ckpt` as <dir>/ckpt-<step>.h5: written as ckpt-<step>.h5.tmp, fsynced, renamed,
  /// the folder fsynced, then `latest` replaced the same way; then files beyond the newest
  /// `keep` and temporaries left by killed writers are removed. Returns the file's path.
  std::string save(const Checkpoint& ckpt) const;

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

 private:
  void remove_temporaries() const;
  void prune() const;
  std::string dir_;
  int64_t keep_;
};

}  // namespace strata::io
