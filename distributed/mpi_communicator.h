// MPI for host tensors: an RAII guard for MPI's lifetime and a communicator over a
// duplicate of MPI_COMM_WORLD. Every wait polls non-blocking calls, so a dead or stuck peer
// ends in an error naming rank, operation and step instead of a hang.
#pragma once

#include <memory>

#include "distributed/communicator.h"

namespace strata::dist {

struct MpiGraveyard;

/// Initialises MPI (MPI_Init_thread, MPI_THREAD_SERIALIZED) for its lifetime and finalises it
/// on destruction. main() owns exactly one; when MPI was already initialised by someone else,
/// the guard neither initialises nor finalises. If an operation was abandoned after a timeout,
/// MPI_Finalize is skipped (it would wait for the dead peer) so that the launcher ends the job.
class MpiRuntime {
 public:
  MpiRuntime(int* argc = nullptr, char*** argv = nullptr);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  /// A communicator over all processes (a duplicate of MPI_COMM_WORLD, errors returned).
  std::shared_ptr<Communicator> world() const;

 private:
  bool owns_ = false;
  std::shared_ptr<MpiGraveyard> graveyard_;
};

}  // namespace strata::dist
