// Activation recomputation on thread ranks: with dropout, every loss and gradient is bitwise
// that of plain execution (the dropout streams are replayed). Its memory saving is asserted
// per process under mpirun (test_mpi_pipeline_memory.cpp): thread ranks share one allocator,
// whose peak depends on how the threads interleave.
#include <gtest/gtest.h>

#include "core/optim/sgd.h"
#include "distributed/thread_communicator.h"
#include "tests/distributed/pipeline/pipeline_stack.h"

namespace strata::dist {
namespace {

using pipeline::ScheduleKind;
using pipeline::ScheduleOptions;

constexpr int kSteps = 2;
// Dropout on every block, so that recomputation must replay the streams.
constexpr testing::StackOptions kStack{
    .width = 32,
    .blocks = 8,
    .dropout = 0.2,
    .microbatch = 64};  // the second step checks that the streams continue as without

struct TrainRun {
  std::vector<double> losses;             // per step
  std::vector<std::vector<float>> grads;  // per step and parameter, flattened
};

// Trains this stage for kSteps SGD steps and records every loss and gradient.
TrainRun train(Communicator& comm, const ScheduleOptions& o, bool recompute, bool replay_rng) {
  testing::PipelineStage stage = testing::make_stage(o, comm.rank(), kStack);
  pipeline::ExecutorOptions eo;
  eo.recompute = recompute;
  if (replay_rng) eo.generators = stage.generators;
  pipeline::PipelineExecutor exec(comm, o, stage.chunks, eo);
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  optim::SGD opt(stage.params, so);
  TrainRun r;
  for (int step = 0; step < kSteps; ++step) {
    opt.zero_grad();
    r.losses.push_back(exec.run());
    for (const Tensor& p : stage.params) r.grads.push_back(p.grad().to_vector<float>());
    opt.step();
  }
  return r;
}

struct Case {
  ScheduleKind kind;
  int stages;
  int64_t virtual_stages;
};

class PipelineRecompute : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineRecompute, IsBitwisePlainExecution) {
  const Case& c = GetParam();
  ScheduleOptions o{c.kind, c.stages, 4, c.virtual_stages};
  run_thread_ranks(c.stages, [&](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    TrainRun plain = train(comm, o, false, false);
    TrainRun again = train(comm, o, true, true);
    EXPECT_EQ(plain.losses, again.losses) << "rank " << comm.rank();
    EXPECT_NE(plain.losses[0], plain.losses[1]) << "the model did not train";
    ASSERT_EQ(plain.grads.size(), again.grads.size());
    for (size_t i = 0; i < plain.grads.size(); ++i) {
      EXPECT_EQ(plain.grads[i], again.grads[i]) << "rank " << comm.rank() << " gradient " << i;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Schedules, PipelineRecompute,
                         ::testing::Values(Case{ScheduleKind::one_f_one_b, 2, 1},
                                           Case{ScheduleKind::one_f_one_b, 4, 1},
                                           Case{ScheduleKind::gpipe, 2, 1},
                                           Case{ScheduleKind::gpipe, 4, 1},
                                           Case{ScheduleKind::interleaved, 2, 2}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string k = info.param.kind == ScheduleKind::one_f_one_b
                                               ? "one_f_one_b"
                                               : pipeline::schedule_kind_name(info.param.kind);
                           return str_cat(k, "_pp", info.param.stages);
                         });

// Without the streams to replay, the recomputed dropout masks are new ones (and later
// forwards draw shifted ones): the gradients differ. This shows that the test above exercises
// dropout, and what the option is for.
TEST(PipelineRecompute, WithoutTheStreamsTheMasksDiffer) {
  ScheduleOptions o{ScheduleKind::one_f_one_b, 2, 4, 1};
  run_thread_ranks(2, [&](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    TrainRun plain = train(comm, o, false, false);
    TrainRun fresh = train(comm, o, true, false);
    EXPECT_NE(plain.grads[0], fresh.grads[0]) << "rank " << comm.rank();
  });
}

TEST(PipelineRecompute, RejectsMismatchedGeneratorLists) {
  run_thread_ranks(1, [](Communicator& comm) {
    pipeline::ExecutorOptions eo;
    eo.generators = {{}, {}};
    pipeline::ChunkFn chunk = [](const Tensor& in, int64_t) { return in; };
    try {
      pipeline::PipelineExecutor exec(comm, {ScheduleKind::gpipe, 1, 2, 1}, {chunk}, eo);
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(),
                   "[pipeline] stage 0 got generator lists for 2 chunks but has 1 chunks; give "
                   "one list per chunk (empty lists for chunks without randomness)");
    }
    eo.generators = {{nullptr}};
    try {
      pipeline::PipelineExecutor exec(comm, {ScheduleKind::gpipe, 1, 2, 1}, {chunk}, eo);
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(),
                   "[pipeline] stage 0 chunk 0 has a null generator; pass the address of each "
                   "random stream the chunk uses");
    }
  });
}

}  // namespace
}  // namespace strata::dist
