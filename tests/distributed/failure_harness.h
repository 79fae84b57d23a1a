// The shared main of the rank-failure tests under mpirun: rank 1 fails at a chosen point
// (dies by std::_Exit or SIGKILL, no MPI_Finalize, or hangs) and every other rank must fail
// with the communicator's timeout error, within the timeout, instead of waiting forever.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

#include "core/error.h"
#include "distributed/mpi_communicator.h"

namespace strata::dist::testing {

using FailureClock = std::chrono::steady_clock;

/// What the failing rank does: "exit", "sigkill" or "hang".
inline void fail_rank(const std::string& how, int step) {
  std::cerr << "rank 1: failing at step " << step << " by " << how << std::endl;
  if (how == "sigkill") std::raise(SIGKILL);
  if (how == "hang") std::this_thread::sleep_for(std::chrono::minutes(5));
  std::_Exit(3);
}

/// Runs `body(world, how, started)` under MPI with argv = MODE TIMEOUT_MS; `started` is set by
/// the body to when the operation that may time out began. A strata::Error is reported (with
/// whether it came within the timeout plus one second of slack) and gives exit code 2; no
/// error gives 1 (the failing rank should have made one).
inline int run_failure_main(
    int argc, char** argv, const char* ranks,
    const std::function<void(Communicator&, const std::string&, FailureClock::time_point&)>& body) {
  if (argc != 3) {
    std::cerr << "usage: mpirun -np " << ranks << " " << argv[0]
              << " exit|sigkill|hang TIMEOUT_MS\n";
    return 64;
  }
  const std::string how = argv[1];
  const int timeout_ms = std::atoi(argv[2]);
  MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  world->set_timeout(std::chrono::milliseconds(timeout_ms));
  FailureClock::time_point started = FailureClock::now();
  try {
    body(*world, how, started);
  } catch (const Error& e) {
    double s = std::chrono::duration<double>(FailureClock::now() - started).count();
    bool bounded = s <= timeout_ms / 1000.0 + 1.0;
    // One write per line, so that mpirun does not interleave the ranks' reports.
    std::string line =
        str_cat("rank ", world->rank(), bounded ? ": clear error after " : ": LATE error after ", s,
                " s: ", e.what(), "\n");
    std::fputs(line.c_str(), stderr);
    return 2;
  }
  std::cerr << "rank " << world->rank() << ": finished without an error, but rank 1 failed\n";
  return 1;
}

}  // namespace strata::dist::testing
