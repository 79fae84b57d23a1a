// DataParallel over MPI, under mpirun with 2 and 4 ranks: the same equivalence checks as
// the thread-rank tests in test_data_parallel.cpp.
#include <gtest/gtest.h>

#include "tests/distributed/dp_checks.h"
#include "tests/distributed/mpi_world.h"

namespace strata::dist {
namespace {

using testing::DpCase;

constexpr double kF32Tolerance = 5e-7;  // see test_data_parallel.cpp
constexpr double kF64Tolerance = 1e-15;

TEST(MpiDataParallel, MatchesOneProcessOnTheGlobalBatch) {
  Communicator& comm = testing::mpi_world();
  for (const char* model : {"mlp", "cnn"}) {
    testing::check_dp_matches_single_process(comm, {model, DType::f32, kF32Tolerance});
    testing::check_dp_matches_single_process(comm, {model, DType::f64, kF64Tolerance});
    testing::check_dp_matches_single_process(comm, {model, DType::f32, kF32Tolerance, 64});
  }
}

TEST(MpiDataParallel, AccumulationMatchesOneLargeBatch) {
  Communicator& comm = testing::mpi_world();
  testing::check_dp_matches_single_process(comm, {"mlp", DType::f64, kF64Tolerance, 25 << 20, 3});
  testing::check_dp_matches_single_process(comm, {"cnn", DType::f32, kF32Tolerance, 64, 3});
}

TEST(MpiDataParallel, UnusedParametersDoNotBlock) {
  testing::check_dp_unused_parameters(testing::mpi_world());
}

}  // namespace
}  // namespace strata::dist
