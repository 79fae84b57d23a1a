// Collective checks that run unchanged on any communicator: as thread ranks inside gtest
// and as MPI ranks under mpirun. Each rank computes the expected result locally.
#pragma once

#include "distributed/communicator.h"

namespace strata::dist::testing {

void check_all_reduce(Communicator& comm);
void check_all_gather(Communicator& comm);
void check_reduce_scatter(Communicator& comm);
void check_broadcast(Communicator& comm);
void check_send_recv(Communicator& comm);
void check_barrier_and_async_order(Communicator& comm);
void check_split(Communicator& comm);

/// Every check above, in order.
void check_all_collectives(Communicator& comm);

}  // namespace strata::dist::testing
