// DataParallel on thread ranks for the harder cases: SyncBatchNorm, BatchNorm buffers, a
// 2-block GPT, and a GAN with a module outside DP (see model_checks.h).
#include <gtest/gtest.h>

#include "core/autocast.h"
#include "core/ops.h"
#include "distributed/sync_batch_norm.h"
#include "distributed/thread_communicator.h"
#include "tests/distributed/dp_checks.h"
#include "tests/distributed/model_checks.h"

namespace strata::dist {
namespace {

// Tolerances (max |dp - single| over every parameter and buffer element after 3 steps):
// DP sums per-rank gradients and SyncBatchNorm per-rank statistics in another order than
// one process, so results differ by rounding only. Observed on 1 to 4 thread ranks and under
// mpirun -np 2 and 4: f32 at most 3.0e-8 (GAN), 2.2e-8 (SyncBatchNorm CNN), 1.3e-8 (GPT,
// SGD); f64 at most 1.2e-14 (GPT, AdamW), 4.4e-16 (SyncBatchNorm CNN). Eval outputs after
// SyncBatchNorm training are checked at 10x these bounds (observed 1.2e-7 f32, 9e-15 f64).
constexpr double kF32Tolerance = 5e-7;
constexpr double kF64Tolerance = 1e-13;

class ModelsOnRanks : public ::testing::TestWithParam<int> {};

void run(int ranks, const std::function<void(Communicator&)>& fn) {
  run_thread_ranks(ranks, [&](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    fn(comm);
  });
}

TEST_P(ModelsOnRanks, SyncBatchNormCnnMatchesOneProcess) {
  run(GetParam(), [](Communicator& comm) {
    testing::check_sync_batch_norm_matches_single_process(comm, DType::f64, kF64Tolerance);
    testing::check_sync_batch_norm_matches_single_process(comm, DType::f32, kF32Tolerance);
  });
}

TEST_P(ModelsOnRanks, BatchNormBuffersAreBroadcast) {
  run(GetParam(), [](Communicator& comm) { testing::check_batch_norm_buffers_broadcast(comm); });
}

TEST_P(ModelsOnRanks, GptMatchesOneProcess) {
  run(GetParam(), [](Communicator& comm) {
    testing::check_gpt_matches_single_process(comm, DType::f64, kF64Tolerance, "adamw");
    testing::check_gpt_matches_single_process(comm, DType::f64, kF64Tolerance, "sgd");
    testing::check_gpt_matches_single_process(comm, DType::f32, kF32Tolerance, "sgd");
  });
}

TEST_P(ModelsOnRanks, GanWithTwoOptimizersMatchesOneProcess) {
  run(GetParam(), [](Communicator& comm) {
    testing::check_gan_matches_single_process(comm, DType::f64, kF64Tolerance);
    testing::check_gan_matches_single_process(comm, DType::f32, kF32Tolerance);
  });
}

// Under bf16 autocast a convolution's output is bf16: SyncBatchNorm normalises it in f32 and
// returns bf16, as BatchNorm does: the same values as for the f32 input, rounded.
TEST_P(ModelsOnRanks, SyncBatchNormTakesAutocastActivations) {
  run(GetParam(), [](Communicator& comm) {
    auto shared = std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
    SyncBatchNorm low(nn::BatchNormOptions{.num_features = 3}, shared);
    SyncBatchNorm ref(nn::BatchNormOptions{.num_features = 3}, shared);
    Generator g(7 + comm.rank());
    Tensor x = randn({4, 3, 2, 2}, g).to(DType::bf16);
    Tensor y;
    {
      AutocastGuard amp(DType::bf16);
      y = low.forward(x);
    }
    Tensor want = ref.forward(x.to(DType::f32));
    EXPECT_EQ(y.dtype(), DType::bf16);
    EXPECT_EQ(testing::max_abs_diff(y, want.to(DType::bf16)), 0.0);
    EXPECT_LT(testing::max_abs_diff(low.running_var(), ref.running_var()), 1e-7);
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, ModelsOnRanks, ::testing::Values(1, 2, 3, 4));

}  // namespace
}  // namespace strata::dist
