// The collectives over MPI, run under mpirun with 2 and 4 ranks (CTest label mpi).
#include <gtest/gtest.h>

#include <thread>

#include "tests/distributed/collective_checks.h"
#include "tests/distributed/mpi_world.h"

namespace strata::dist {
namespace {

TEST(MpiCommunicator, AllCollectivesMatchTheLocalReference) {
  Communicator& comm = testing::mpi_world();
  EXPECT_STREQ(comm.backend(), "mpi");
  testing::check_all_collectives(comm);
}

TEST(MpiCommunicator, LatePeerTimesOutThenCompletes) {
  Communicator& comm = testing::mpi_world();
  ASSERT_GE(comm.size(), 2) << "needs 2 ranks: run under mpirun -np 2 (ctest does)";
  comm.set_step(5);
  Tensor t = ones({4});
  if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  WorkPtr work = comm.all_reduce_async(t, ReduceOp::sum);
  if (comm.rank() == 0) {
    std::string message;
    try {
      work->wait(std::chrono::milliseconds(50));
    } catch (const Error& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "[dist] rank 0 of " + std::to_string(comm.size()) +
                           " (mpi): all_reduce(f32[4] cpu, sum) at step 5 timed out after 50 ms "
                           "(a peer died, is stuck, or called collectives in a different order)");
  }
  work->wait(comm.timeout());
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(4, static_cast<float>(comm.size())));
  comm.set_step(0);
}

}  // namespace
}  // namespace strata::dist
