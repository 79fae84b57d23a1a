// NCCL for CUDA tensors: one rank per GPU, the ncclUniqueId sent over a host communicator
// (MPI). Builds without CUDA link a stub whose factory throws a clear error.
#pragma once

#include <memory>

#include "distributed/communicator.h"

namespace strata::dist {

/// Whether this build has NCCL (a CUDA build).
bool nccl_available();

/// Collective over `bootstrap`: rank 0 creates the ncclUniqueId and broadcasts it; every rank
/// joins with its bootstrap rank, on CUDA device `device` (choose it by local rank). Throws
/// strata::Error when the build has no CUDA or no GPU is visible.
std::shared_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device);

}  // namespace strata::dist
