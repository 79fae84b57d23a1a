// A pipeline stage whose rank fails mid-step, under mpirun -np 2 or 4 (1F1B, one stage per
// rank). At step 3, in its forward of micro-batch 1, rank 1 dies (std::_Exit or SIGKILL) or
// hangs; every other stage must fail with the communicator's timeout error naming its rank,
// the operation and the step. run_pipeline_failure.cmake checks messages, exit codes, times.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "core/nn/linear.h"
#include "core/ops/loss.h"
#include "distributed/mpi_communicator.h"
#include "distributed/pipeline/executor.h"

namespace {

namespace dist = strata::dist;
using Clock = std::chrono::steady_clock;

constexpr int kFailAt = 3;
constexpr int64_t kMicrobatches = 4;

/// What rank 1 does at step kFailAt: "exit", "sigkill" or "hang".
void fail(const std::string& how) {
  std::cerr << "rank 1: failing at step " << kFailAt << " by " << how << std::endl;
  if (how == "sigkill") std::raise(SIGKILL);
  if (how == "hang") std::this_thread::sleep_for(std::chrono::minutes(5));
  std::_Exit(3);
}

/// Ten steps of a 1F1B pipeline of one Linear(8, 8) per stage, with rank 1 failing at kFailAt;
/// `step_start` is when the current step began.
void train(dist::Communicator& world, const std::string& how, Clock::time_point& step_start) {
  strata::Generator gen(1);
  strata::nn::Linear layer({8, 8}, gen);
  int step = 0;
  bool last = world.rank() == world.size() - 1;
  dist::pipeline::ChunkFn chunk = [&](const strata::Tensor& in, int64_t mb) {
    if (world.rank() == 1 && step == kFailAt && mb == 1) fail(how);
    strata::Tensor out = layer.forward(in.defined() ? in : strata::ones({4, 8}));
    return last ? strata::mse_loss(out, strata::zeros({4, 8})) : out;
  };
  dist::pipeline::PipelineExecutor exec(
      world, {dist::pipeline::ScheduleKind::one_f_one_b, world.size(), kMicrobatches, 1}, {chunk});
  for (; step < 10; ++step) {
    world.set_step(step);
    step_start = Clock::now();
    exec.run();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: mpirun -np 2|4 " << argv[0] << " exit|sigkill|hang TIMEOUT_MS\n";
    return 64;
  }
  const std::string how = argv[1];
  const int timeout_ms = std::atoi(argv[2]);
  dist::MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  world->set_timeout(std::chrono::milliseconds(timeout_ms));
  Clock::time_point step_start = Clock::now();
  try {
    train(*world, how, step_start);
  } catch (const strata::Error& e) {
    double s = std::chrono::duration<double>(Clock::now() - step_start).count();
    // The step's compute takes milliseconds: within the timeout plus one second of slack.
    bool bounded = s <= timeout_ms / 1000.0 + 1.0;
    // One write per line, so that mpirun does not interleave the ranks' reports.
    std::string line = strata::str_cat("rank ", world->rank(),
                                       bounded ? ": clear error after " : ": LATE error after ", s,
                                       " s: ", e.what(), "\n");
    std::fputs(line.c_str(), stderr);
    return 2;
  }
  std::cerr << "rank " << world->rank() << ": finished without an error, but rank 1 failed\n";
  return 1;
}
