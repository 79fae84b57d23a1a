// The checks of test_models_dp.cpp over MPI, under mpirun with 2 and 4 ranks.
#include <gtest/gtest.h>

#include "tests/distributed/model_checks.h"
#include "tests/distributed/mpi_world.h"

namespace strata::dist {
namespace {

constexpr double kF32Tolerance = 5e-7;  // see test_models_dp.cpp
constexpr double kF64Tolerance = 1e-13;

TEST(MpiModels, SyncBatchNormCnnMatchesOneProcess) {
  Communicator& comm = testing::mpi_world();
  testing::check_sync_batch_norm_matches_single_process(comm, DType::f64, kF64Tolerance);
  testing::check_sync_batch_norm_matches_single_process(comm, DType::f32, kF32Tolerance);
}

TEST(MpiModels, BatchNormBuffersAreBroadcast) {
  testing::check_batch_norm_buffers_broadcast(testing::mpi_world());
}

TEST(MpiModels, GptMatchesOneProcess) {
  Communicator& comm = testing::mpi_world();
  testing::check_gpt_matches_single_process(comm, DType::f64, kF64Tolerance, "adamw");
  testing::check_gpt_matches_single_process(comm, DType::f64, kF64Tolerance, "sgd");
  testing::check_gpt_matches_single_process(comm, DType::f32, kF32Tolerance, "sgd");
}

TEST(MpiModels, GanWithTwoOptimizersMatchesOneProcess) {
  Communicator& comm = testing::mpi_world();
  testing::check_gan_matches_single_process(comm, DType::f64, kF64Tolerance);
  testing::check_gan_matches_single_process(comm, DType::f32, kF32Tolerance);
}

}  // namespace
}  // namespace strata::dist
