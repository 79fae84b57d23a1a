// The world communicator of the mpirun tests (set by mpi_main.cpp).
#pragma once

#include "distributed/communicator.h"

namespace strata::dist::testing {

Communicator& mpi_world();
void set_mpi_world(Communicator* world);

}  // namespace strata::dist::testing
