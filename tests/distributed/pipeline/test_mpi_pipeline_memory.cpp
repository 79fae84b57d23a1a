// Activation memory of a pipeline stage from the allocator's statistics, under mpirun (one
// process per stage, so each process's allocator sees one stage): 1F1B holds at most p
// micro-batches of activations, GPipe all m, and recomputation holds less than either.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/autograd/node.h"
#include "core/backend/backend.h"
#include "tests/distributed/mpi_world.h"
#include "tests/distributed/pipeline/pipeline_stack.h"

namespace strata::dist {
namespace {

using pipeline::ScheduleKind;

constexpr int64_t kMicrobatches = 8;
constexpr testing::StackOptions kStack{.width = 64, .blocks = 9, .dropout = 0.1, .microbatch = 256};

int64_t current_bytes() { return cpu_backend().memory_stats(Device::cpu()).current_bytes; }
int64_t bytes_of(const Tensor& t) { return t.numel() * dtype_size(t.dtype()); }

/// One micro-batch on this stage, alone.
struct MicrobatchMemory {
  int64_t held = 0;  // A: what its forward leaves held until its backward: the input
                     // (received; stage 0 slices its data instead), the graph and the output
  int64_t full = 0;  // B: the peak of its forward and backward into existing gradients, over
                     // a baseline without gradients (so the gradients are included)
  int64_t io = 0;    // its input and output alone (what recomputation holds)
};

MicrobatchMemory microbatch_memory(const testing::PipelineStage& stage, bool first_stage) {
  for (Tensor p : stage.params) p.zero_grad();
  MicrobatchMemory m;
  int64_t before = current_bytes();
  cpu_backend().reset_peak(Device::cpu());
  // Twice: the second backward accumulates into the gradients the first one allocated.
  for (int64_t mb = 0; mb < 2; ++mb) {
    Tensor in;
    if (!first_stage) in = zeros({kStack.microbatch, kStack.width}).set_requires_grad(true);
    int64_t start = current_bytes();
    Tensor out = stage.chunks[0](in, mb);
    m.held = current_bytes() - start + (in.defined() ? bytes_of(in) : 0);
    m.io = (in.defined() ? bytes_of(in) : 0) + (out.numel() > 1 ? bytes_of(out) : 0);
    run_backward({out}, {ones_like(out)}, false, false);
  }
  m.full = cpu_backend().memory_stats(Device::cpu()).peak_bytes - before;
  for (Tensor p : stage.params) p.zero_grad();
  return m;
}

struct StepMemory {
  int64_t peak = 0;  // peak over the step's baseline
  int64_t live = 0;  // the executor's peak_live_microbatches
};

// One warm-up step, then the measured one (gradients are reset by zero_grad before each, so
// both allocate the parameter gradients).
StepMemory measure(Communicator& comm, ScheduleKind kind, bool recompute, MicrobatchMemory* mb) {
  pipeline::ScheduleOptions o{kind, comm.size(), kMicrobatches, 1};
  testing::PipelineStage stage = testing::make_stage(o, comm.rank(), kStack);
  pipeline::ExecutorOptions eo;
  eo.recompute = recompute;
  eo.generators = stage.generators;
  pipeline::PipelineExecutor exec(comm, o, stage.chunks, eo);
  *mb = microbatch_memory(stage, comm.rank() == 0);
  StepMemory m;
  for (int step = 0; step < 2; ++step) {
    for (Tensor p : stage.params) p.zero_grad();
    comm.barrier();
    int64_t baseline = current_bytes();
    cpu_backend().reset_peak(Device::cpu());
    exec.run();
    m.peak = cpu_backend().memory_stats(Device::cpu()).peak_bytes - baseline;
    m.live = exec.peak_live_microbatches();
  }
  return m;
}

TEST(MpiPipelineMemory, OneFOneBHoldsPMicrobatchesGPipeAllOfThem) {
  Communicator& comm = testing::mpi_world();
  int p = comm.size(), rank = comm.rank();
  MicrobatchMemory mb;
  StepMemory gpipe = measure(comm, ScheduleKind::gpipe, false, &mb);
  StepMemory ofob = measure(comm, ScheduleKind::one_f_one_b, false, &mb);
  StepMemory recompute = measure(comm, ScheduleKind::one_f_one_b, true, &mb);
  double a = static_cast<double>(mb.held);
  std::printf(
      "stage %d of %d: one micro-batch holds A = %lld bytes, peaks at B = %lld (%.2f A); step "
      "peak over baseline: GPipe %.2f A (%lld live), 1F1B %.2f A (%lld live), 1F1B with "
      "recomputation %.2f A\n",
      rank, p, (long long)mb.held, (long long)mb.full, mb.full / a, gpipe.peak / a,
      (long long)gpipe.live, ofob.peak / a, (long long)ofob.live, recompute.peak / a);
  ASSERT_GT(mb.held, 0);
  // The counter: GPipe keeps every micro-batch; 1F1B stage s at most p - s.
  EXPECT_EQ(gpipe.live, kMicrobatches);
  EXPECT_EQ(ofob.live, std::min<int64_t>(kMicrobatches, p - rank));
  EXPECT_EQ(recompute.live, ofob.live);
  // The allocator agrees with it: the step peaks while live - 1 micro-batches are held and
  // one runs its backward. Slack: headers, loss scalars, sent gradients not yet reaped.
  int64_t slack = mb.held / 8;
  for (const StepMemory& m : {gpipe, ofob}) {
    EXPECT_LE(m.peak, (m.live - 1) * mb.held + mb.full + slack) << "stage " << rank;
    EXPECT_GE(m.peak, (m.live - 0.5) * a) << "stage " << rank;
  }
  if (rank == 0) {  // the brief's bounds, with p = 1F1B's live count on stage 0
    EXPECT_LE(ofob.peak, (p - 1) * mb.held + mb.full + slack);
    EXPECT_GE(gpipe.peak, (kMicrobatches - 0.5) * a);
  }
  // Recomputation holds only each live micro-batch's input and output.
  EXPECT_LE(recompute.peak, (recompute.live - 1) * mb.io + mb.full + slack) << "stage " << rank;
  if (ofob.live > 1) {
    EXPECT_LT(recompute.peak, ofob.peak) << "stage " << rank;
  }
}

}  // namespace
}  // namespace strata::dist
