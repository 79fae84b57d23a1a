// A rank that fails mid-run, under mpirun -np 2. At step 3 rank 1 either dies abruptly
// (std::_Exit or SIGKILL, no MPI_Finalize) or hangs; rank 0 must then fail with the
// communicator's timeout error instead of waiting forever. run_mpi_failure.cmake runs the
// modes and checks messages, exit codes and times.
#include "tests/distributed/failure_harness.h"

namespace {

namespace dist = strata::dist;
constexpr int kFailAt = 3;

/// Ten all-reduces, rank 1 failing before the one of step kFailAt.
void all_reduces(dist::Communicator& world, const std::string& how,
                 dist::testing::FailureClock::time_point& started) {
  for (int step = 0; step < 10; ++step) {
    world.set_step(step);
    if (world.rank() == 1 && step == kFailAt) dist::testing::fail_rank(how, step);
    strata::Tensor t = strata::full({1024}, 1.0);
    started = dist::testing::FailureClock::now();
    world.all_reduce(t, dist::ReduceOp::sum);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return dist::testing::run_failure_main(argc, argv, "2", all_reduces);
}
