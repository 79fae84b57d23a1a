// main() for the tests that run under mpirun: one MPI runtime, the world communicator for
// the tests, and an exit code that is non-zero on every rank when any rank failed.
#include <gtest/gtest.h>

#include "distributed/mpi_communicator.h"
#include "tests/distributed/mpi_world.h"

namespace strata::dist::testing {
namespace {
Communicator* g_world = nullptr;  // test scaffolding only: set by main for the test bodies
}  // namespace

Communicator& mpi_world() { return *g_world; }
void set_mpi_world(Communicator* world) { g_world = world; }

}  // namespace strata::dist::testing

int main(int argc, char** argv) {
  namespace dist = strata::dist;
  ::testing::InitGoogleTest(&argc, argv);
  dist::MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  world->set_timeout(std::chrono::seconds(60));
  dist::testing::set_mpi_world(world.get());
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  strata::Tensor flag = strata::full({1}, failed, strata::DType::i32);
  world->all_reduce(flag, dist::ReduceOp::max);
  int any_failed = static_cast<int>(flag.item());
  if (any_failed && !failed) {
    std::cerr << "rank " << world->rank() << ": passed here, but another rank failed\n";
  }
  dist::testing::set_mpi_world(nullptr);
  world.reset();
  return any_failed;
}
