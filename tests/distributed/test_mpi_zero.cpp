// ZeRO-1 and cross-rank clipping over MPI, under mpirun with 2 and 4 ranks: the checks of
// test_zero.cpp.
#include <gtest/gtest.h>

#include "tests/distributed/mpi_world.h"
#include "tests/distributed/zero_checks.h"

namespace strata::dist {
namespace {

using testing::ZeroCase;

// MPI may sum in another order in reduce-scatter than in all-reduce, and clipping sums the
// norm over shards: rounding only. Observed (OpenMPI 4.1, 2 and 4 ranks): 0 without
// clipping, at most 2.8e-17 in f64 with it.
constexpr double kF32Tolerance = 1e-6;
constexpr double kF64Tolerance = 1e-15;

TEST(MpiZero, MatchesDataParallelWithThePlainOptimizer) {
  Communicator& comm = testing::mpi_world();
  for (const char* opt : {"sgd", "adamw"}) {
    testing::check_zero_matches_data_parallel(comm, {"mlp", opt, DType::f32, kF32Tolerance});
    testing::check_zero_matches_data_parallel(comm, {"mlp", opt, DType::f64, kF64Tolerance});
    testing::check_zero_matches_data_parallel(comm, {"cnn", opt, DType::f32, kF32Tolerance, 0.05});
    testing::check_zero_matches_data_parallel(comm, {"mlp", opt, DType::f64, kF64Tolerance, 0.05});
  }
}

TEST(MpiZero, UnusedParametersAreSkipped) {
  testing::check_zero_unused_parameters(testing::mpi_world());
}

}  // namespace
}  // namespace strata::dist
