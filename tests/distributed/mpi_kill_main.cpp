// A rank that fails mid-run, under mpirun -np 2. At step 3 rank 1 either dies abruptly
// (std::_Exit or SIGKILL, no MPI_Finalize) or hangs; rank 0 must then fail with the
// communicator's timeout error instead of waiting forever. run_mpi_failure.cmake runs the
// modes and checks messages, exit codes and times.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "distributed/mpi_communicator.h"

namespace {

namespace dist = strata::dist;
using Clock = std::chrono::steady_clock;

constexpr int kFailAt = 3;

/// What rank 1 does at step kFailAt: "exit", "sigkill" or "hang".
void fail(const std::string& how) {
  std::cerr << "rank 1: failing at step " << kFailAt << " by " << how << std::endl;
  if (how == "sigkill") std::raise(SIGKILL);
  if (how == "hang") std::this_thread::sleep_for(std::chrono::minutes(5));
  std::_Exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: mpirun -np 2 " << argv[0] << " exit|sigkill|hang TIMEOUT_MS\n";
    return 64;
  }
  const std::string how = argv[1];
  const int timeout_ms = std::atoi(argv[2]);
  dist::MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  world->set_timeout(std::chrono::milliseconds(timeout_ms));
  Clock::time_point call_start = Clock::now();
  try {
    for (int step = 0; step < 10; ++step) {
      world->set_step(step);
      if (world->rank() == 1 && step == kFailAt) fail(how);
      strata::Tensor t = strata::full({1024}, 1.0);
      call_start = Clock::now();
      world->all_reduce(t, dist::ReduceOp::sum);
    }
  } catch (const strata::Error& e) {
    double s = std::chrono::duration<double>(Clock::now() - call_start).count();
    // Within the timeout plus one second of slack for a loaded machine.
    bool bounded = s <= timeout_ms / 1000.0 + 1.0;
    std::cerr << "rank " << world->rank()
              << (bounded ? ": clear error after " : ": LATE error after ") << s
              << " s: " << e.what() << std::endl;
    return 2;
  }
  std::cerr << "rank " << world->rank() << ": finished without an error, but rank 1 failed\n";
  return 1;
}
