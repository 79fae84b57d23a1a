// A pipeline stage whose rank fails mid-step, under mpirun -np 2 or 4 (1F1B, one stage per
// rank). At step 3, in its forward of micro-batch 1, rank 1 dies (std::_Exit or SIGKILL) or
// hangs; every other stage must fail with the communicator's timeout error naming its rank,
// the operation and the step. run_pipeline_failure.cmake checks messages, exit codes, times.
#include "core/nn/linear.h"
#include "core/ops/loss.h"
#include "distributed/pipeline/executor.h"
#include "tests/distributed/failure_harness.h"

namespace {

namespace dist = strata::dist;
using Clock = dist::testing::FailureClock;

constexpr int kFailAt = 3;
constexpr int64_t kMicrobatches = 4;

/// Ten steps of a 1F1B pipeline of one Linear(8, 8) per stage, with rank 1 failing at kFailAt;
/// `step_start` is when the current step began.
void train(dist::Communicator& world, const std::string& how, Clock::time_point& step_start) {
  strata::Generator gen(1);
  strata::nn::Linear layer({8, 8}, gen);
  int step = 0;
  bool last = world.rank() == world.size() - 1;
  dist::pipeline::ChunkFn chunk = [&](const strata::Tensor& in, int64_t mb) {
    if (world.rank() == 1 && step == kFailAt && mb == 1) dist::testing::fail_rank(how, step);
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
  return dist::testing::run_failure_main(argc, argv, "2|4", train);
}
