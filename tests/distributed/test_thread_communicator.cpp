// The collectives on thread ranks (1 to 4 ranks) and the size-1 communicator, plus the
// error paths: timeouts, a failed peer, mismatched calls and bad arguments.
#include <gtest/gtest.h>

#include <thread>

#include "distributed/thread_communicator.h"
#include "tests/distributed/collective_checks.h"
#include "tests/support/values.h"

namespace strata::dist {
namespace {

using strata::testing::message_of;

TEST(SingleCommunicator, AllCollectivesAreTheIdentity) {
  auto comm = make_single_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_STREQ(comm->backend(), "single");
  testing::check_all_collectives(*comm);
}

TEST(SingleCommunicator, RecvWithoutSendIsAnError) {
  auto comm = make_single_communicator();
  Tensor t = zeros({2});
  EXPECT_EQ(message_of([&] { comm->recv(t, 0, 3); }),
            "[dist] rank 0 of 1 (single): recv(f32[2] cpu) at step 0: nothing was sent to this "
            "rank with tag 3; send before receiving");
}

class ThreadRanks : public ::testing::TestWithParam<int> {};

TEST_P(ThreadRanks, AllCollectivesMatchTheLocalReference) {
  run_thread_ranks(GetParam(), [](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(30));
    EXPECT_STREQ(comm.backend(), "threads");
    testing::check_all_collectives(comm);
  });
}

INSTANTIATE_TEST_SUITE_P(Sizes, ThreadRanks, ::testing::Values(1, 2, 3, 4));

TEST(ThreadCommunicator, MissingPeerTimesOutNamingRankOpAndStep) {
  std::string message;
  run_thread_ranks(2, [&](Communicator& comm) {
    comm.set_step(17);
    Tensor t = ones({4});
    if (comm.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // late, not dead
      comm.all_reduce(t);
      return;
    }
    WorkPtr work = comm.all_reduce_async(t, ReduceOp::sum);
    message = message_of([&] { work->wait(std::chrono::milliseconds(50)); });
    work->wait(std::chrono::seconds(30));  // a timed-out Work can be waited again
    EXPECT_EQ(t.to_vector<float>(), std::vector<float>(4, 2.0f));
  });
  EXPECT_EQ(message,
            "[dist] rank 0 of 2 (threads): all_reduce(f32[4] cpu, sum) at step 17 timed out "
            "after 50 ms waiting for rank(s) 1 (a peer died, is stuck, or called collectives in "
            "a different order)");
}

TEST(ThreadCommunicator, FailedRankReleasesItsPeersAtOnce) {
  std::string peer_message;
  auto start = std::chrono::steady_clock::now();
  std::string first = message_of([&] {
    run_thread_ranks(3, [&](Communicator& comm) {
      if (comm.rank() == 2) throw Error("boom");
      Tensor t = ones({2});
      if (comm.rank() == 0) {
        peer_message = message_of([&] { comm.all_reduce(t); });
      } else {
        comm.all_reduce(t);
      }
    });
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(first, "boom");  // the root cause, not a peer's consequence
  EXPECT_EQ(peer_message,
            "[dist] rank 0 of 3 (threads): all_reduce(f32[2] cpu, sum) at step 0 failed: rank 2 "
            "failed: boom");
  EXPECT_LT(seconds, 5.0);  // not the 5-minute default timeout
}

TEST(ThreadCommunicator, MismatchedCallsNameBothSides) {
  std::vector<std::string> messages(2);
  run_thread_ranks(2, [&](Communicator& comm) {
    Tensor t = ones({comm.rank() == 0 ? 3 : 4});
    messages[comm.rank()] = message_of([&] { comm.all_reduce(t); });
    Tensor u = ones({1});
    if (comm.rank() == 0) {
      messages[0] += " | " + message_of([&] { comm.broadcast(u, 0); });
    } else {
      // The message names the rank that arrives second: make that rank 1.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      messages[1] += " | " + message_of([&] { comm.all_reduce(u); });
    }
  });
  EXPECT_EQ(messages[0],
            "[dist] rank 0 of 2 (threads): all_reduce(f32[3] cpu, sum) at step 0: rank 0 passed "
            "f32[3] cpu but rank 1 passed f32[4] cpu; every rank must pass the same dtype and "
            "size | [dist] rank 0 of 2 (threads): broadcast(f32[1] cpu, root 0) at step 0: rank "
            "1 called all_reduce where another rank called broadcast; every rank must call "
            "collectives in the same order");
}

TEST(ThreadCommunicator, BadArgumentsAreErrors) {
  auto comms = make_thread_communicators(2);
  Communicator& comm = *comms[0];
  Tensor ints = ones({2}, DType::i32);
  EXPECT_EQ(message_of([&] { comm.all_reduce_async(ints, ReduceOp::avg); }),
            "[all_reduce] avg needs a floating tensor, got i32[2] cpu; use sum and divide");
  Tensor half = ones({2}, DType::bf16);
  EXPECT_EQ(message_of([&] { comm.all_reduce_async(half, ReduceOp::sum); }),
            "[all_reduce] cannot reduce bf16[2] cpu: supported dtypes are f32, f64, i32 and i64; "
            "convert with t.to(DType::f32)");
  Tensor strided = ones({3, 2}).t();
  EXPECT_EQ(message_of([&] { comm.broadcast_async(strided, 0); }),
            "[broadcast] tensor f32[2, 3] cpu is not contiguous; pass t.contiguous() and copy the "
            "result back");
  Tensor t = ones({3});
  EXPECT_EQ(message_of([&] { comm.send_async(t, 2, 0); }),
            "[send] rank 2 is out of range for a communicator of size 2");
  Tensor out = ones({5});
  EXPECT_EQ(message_of([&] { comm.all_gather_async(t, out); }),
            "[all_gather] output f32[5] cpu must hold size (2) x input f32[3] cpu elements");
}

}  // namespace
}  // namespace strata::dist
