// Ranks as threads of one process, meeting in a shared rendezvous: the communicator the
// unit tests use to run N-rank collectives and data parallelism without mpirun.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace strata::dist {

/// `size` communicators, one per rank, that must each be used from its own thread.
std::vector<std::shared_ptr<Communicator>> make_thread_communicators(int size);

/// Runs fn(comm) for `size` ranks on `size` threads and joins them. When a rank throws, the
/// others' pending and future operations fail at once ("rank r failed: ..."), so nothing
/// waits for a dead peer; the first failure is rethrown after all threads have joined.
void run_thread_ranks(int size, const std::function<void(Communicator&)>& fn);

}  // namespace strata::dist
