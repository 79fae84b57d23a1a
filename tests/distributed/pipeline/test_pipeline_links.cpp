// The pipeline's directed links on thread ranks: every neighbour pair gets one two-rank
// communicator per direction (the wrap pair too for interleaving), messages arrive, and
// errors on a link name the pipeline group's ranks and step.
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "core/error.h"
#include "distributed/pipeline/links.h"
#include "distributed/thread_communicator.h"
#include "tests/support/values.h"

namespace strata::dist::pipeline {
namespace {

/// Each stage sends its number times 10 plus the neighbour's to every neighbour, over out,
/// and checks what arrives over in; returns every stage's neighbours.
std::vector<std::set<int>> exchange(int stages, bool wrap) {
  std::vector<std::set<int>> neighbours(stages);
  std::mutex mu;
  run_thread_ranks(stages, [&](Communicator& pipe) {
    pipe.set_timeout(std::chrono::seconds(20));
    PeerLinks links(pipe, wrap);
    const int me = pipe.rank();
    std::set<int> mine;
    for (int other :
         {me - 1, me + 1, wrap ? (me + stages - 1) % stages : -1, wrap ? (me + 1) % stages : -1}) {
      if (other < 0 || other >= stages || other == me) continue;
      mine.insert(other);
    }
    for (int other : mine) {
      const PeerLink& link = links.with(other);
      EXPECT_EQ(link.stage, other);
      EXPECT_NE(link.out.comm, link.in.comm) << "one communicator per direction";
      EXPECT_EQ(link.out.comm->size(), 2);
      Tensor t = full({3}, me * 10 + other);
      link.out.comm->send(t, link.out.peer, 5);
    }
    for (int other : mine) {
      const PeerLink& link = links.with(other);
      Tensor got = zeros({3});
      link.in.comm->recv(got, link.in.peer, 5);
      EXPECT_EQ(got.to_vector<float>(), std::vector<float>(3, other * 10 + me));
    }
    std::lock_guard<std::mutex> lock(mu);
    neighbours[me] = mine;
  });
  return neighbours;
}

TEST(PeerLinks, EveryNeighbourPairGetsBothDirections) {
  EXPECT_EQ(exchange(2, false), (std::vector<std::set<int>>{{1}, {0}}));
  EXPECT_EQ(exchange(2, true), (std::vector<std::set<int>>{{1}, {0}}));
  EXPECT_EQ(exchange(3, false), (std::vector<std::set<int>>{{1}, {0, 2}, {1}}));
  EXPECT_EQ(exchange(4, true), (std::vector<std::set<int>>{{1, 3}, {0, 2}, {1, 3}, {2, 0}}));
  EXPECT_EQ(exchange(5, false).size(), 5u);
}

TEST(PeerLinks, ErrorsNameThePipelineRanksAndStep) {
  std::mutex mu;
  std::string message;
  run_thread_ranks(3, [&](Communicator& pipe) {
    PeerLinks links(pipe, false);
    pipe.set_timeout(std::chrono::milliseconds(100));
    pipe.set_step(7);
    links.follow(pipe);
    if (pipe.rank() != 1) return;
    const PeerLink& link = links.with(2);
    Tensor t = zeros({4});
    std::string m = strata::testing::message_of([&] { link.in.comm->recv(t, link.in.peer, 9); });
    std::lock_guard<std::mutex> lock(mu);
    message = m;
  });
  EXPECT_EQ(message.rfind("[dist] rank 1 of 3 (threads): recv(f32[4] cpu, from 2, tag 9) at step "
                          "7 timed out after 100 ms",
                          0),
            0u)
      << message;
}

}  // namespace
}  // namespace strata::dist::pipeline
