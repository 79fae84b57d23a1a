// Pipeline parallelism over MPI, under mpirun with 2 and 4 ranks (one stage per rank): the
// equivalence checks of test_pipeline_parallel.cpp.
#include <gtest/gtest.h>

#include "tests/distributed/mpi_world.h"
#include "tests/distributed/pipeline/pipeline_checks.h"

namespace strata::dist {
namespace {

using pipeline::ScheduleKind;

// The same bounds as on thread ranks: the transport moves bytes, so results are identical.
constexpr double kF32Tolerance = 1e-6;
constexpr double kF64Tolerance = 5e-15;

TEST(MpiPipeline, SchedulesMatchTheUnsplitModel) {
  Communicator& comm = testing::mpi_world();
  for (DType dtype : {DType::f32, DType::f64}) {
    double tol = dtype == DType::f32 ? kF32Tolerance : kF64Tolerance;
    testing::check_pipeline_matches_single_process(comm, {ScheduleKind::gpipe, 4, 1, dtype, tol});
    testing::check_pipeline_matches_single_process(comm,
                                                   {ScheduleKind::one_f_one_b, 4, 1, dtype, tol});
    testing::check_pipeline_matches_single_process(comm,
                                                   {ScheduleKind::interleaved, 4, 2, dtype, tol});
  }
}

}  // namespace
}  // namespace strata::dist
