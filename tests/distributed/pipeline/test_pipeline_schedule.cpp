// Pipeline schedules with no communicator: exact action orders of GPipe, 1F1B and interleaved
// 1F1B, deadlock freedom and bubble fraction from the simulator, and the errors.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "distributed/pipeline/schedule.h"

namespace strata::dist::pipeline {
namespace {

ScheduleOptions opts(ScheduleKind kind, int p, int64_t m, int64_t v = 1) {
  ScheduleOptions o;
  o.kind = kind;
  o.stages = p;
  o.microbatches = m;
  o.virtual_stages = v;
  return o;
}

// The stage's actions joined by spaces; compute_only drops the sends and receives.
std::string order(const ScheduleOptions& o, int stage, bool compute_only, bool chunks = false) {
  std::string out;
  for (const Action& a : stage_actions(o, stage)) {
    bool compute = a.kind == ActionKind::forward || a.kind == ActionKind::backward;
    if (compute_only && !compute) continue;
    if (!out.empty()) out += ' ';
    out += action_name(a, chunks);
  }
  return out;
}

TEST(PipelineSchedule, GPipeRunsAllForwardsThenAllBackwards) {
  auto o = opts(ScheduleKind::gpipe, 2, 3);
  EXPECT_EQ(order(o, 0, false), "F0 sa0>1 F1 sa1>1 F2 sa2>1 rg0<1 B0 rg1<1 B1 rg2<1 B2");
  EXPECT_EQ(order(o, 1, false), "ra0<0 F0 ra1<0 F1 ra2<0 F2 B0 sg0>0 B1 sg1>0 B2 sg2>0");
  auto o4 = opts(ScheduleKind::gpipe, 4, 2);
  for (int s = 0; s < 4; ++s) EXPECT_EQ(order(o4, s, true), "F0 F1 B0 B1") << "stage " << s;
  EXPECT_EQ(order(o4, 2, false), "ra0<1 F0 sa0>3 ra1<1 F1 sa1>3 rg0<3 B0 sg0>1 rg1<3 B1 sg1>1");
}

TEST(PipelineSchedule, OneFOneBWarmsUpThenAlternates) {
  auto o = opts(ScheduleKind::one_f_one_b, 2, 3);
  EXPECT_EQ(order(o, 0, false), "F0 sa0>1 F1 sa1>1 rg0<1 B0 F2 sa2>1 rg1<1 B1 rg2<1 B2");
  EXPECT_EQ(order(o, 1, false), "ra0<0 F0 B0 sg0>0 ra1<0 F1 B1 sg1>0 ra2<0 F2 B2 sg2>0");
  auto o4 = opts(ScheduleKind::one_f_one_b, 4, 4);
  EXPECT_EQ(order(o4, 0, true), "F0 F1 F2 F3 B0 B1 B2 B3");
  EXPECT_EQ(order(o4, 1, true), "F0 F1 F2 B0 F3 B1 B2 B3");
  EXPECT_EQ(order(o4, 2, true), "F0 F1 B0 F2 B1 F3 B2 B3");
  EXPECT_EQ(order(o4, 3, true), "F0 B0 F1 B1 F2 B2 F3 B3");
  // Fewer micro-batches than stages: the warm-up is cut to m.
  auto o3 = opts(ScheduleKind::one_f_one_b, 3, 2);
  EXPECT_EQ(order(o3, 0, true), "F0 F1 B0 B1");
  EXPECT_EQ(order(o3, 1, true), "F0 F1 B0 B1");
  EXPECT_EQ(order(o3, 2, true), "F0 B0 F1 B1");
}

// Expected orders worked out by hand from Megatron-LM's get_model_chunk_id and
// get_microbatch_id_in_model_chunk (warm-up (p-s-1)*2 + (v-1)*p forwards).
TEST(PipelineSchedule, InterleavedFollowsMegatron) {
  auto o = opts(ScheduleKind::interleaved, 2, 4, 2);
  EXPECT_EQ(order(o, 0, true, true),
            "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0");
  EXPECT_EQ(order(o, 1, true, true),
            "F0.0 F1.0 F0.1 B0.1 F1.1 B1.1 F2.0 B0.0 F3.0 B1.0 F2.1 B2.1 F3.1 B3.1 B2.0 B3.0");
  // Chunk 1 of stage 0 receives from the last stage's chunk 0; the last virtual stage sends
  // nothing forward.
  EXPECT_EQ(order(opts(ScheduleKind::interleaved, 2, 2, 2), 0, false, true),
            "F0.0 sa0.0>1 F1.0 sa1.0>1 ra0.1<1 F0.1 sa0.1>1 ra1.1<1 F1.1 sa1.1>1 rg0.1<1 B0.1 "
            "sg0.1>1 rg1.1<1 B1.1 sg1.1>1 rg0.0<1 B0.0 rg1.0<1 B1.0");
}

TEST(PipelineSchedule, SingleStageHasNoCommunication) {
  for (auto kind : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b}) {
    EXPECT_EQ(order(opts(kind, 1, 2), 0, false),
              kind == ScheduleKind::gpipe ? "F0 F1 B0 B1" : "F0 B0 F1 B1");
  }
}

struct BubbleCase {
  ScheduleKind kind;
  int p;
  int64_t m, v;
};

// Deadlock freedom for many layouts, and the simulated bubble against theory. With a fixed
// cost per chunk the simulated bubble is exactly the theory, (p-1)/(v*m+p-1).
TEST(PipelineSchedule, SimulationIsDeadlockFreeAndMatchesTheBubbleTheory) {
  std::vector<BubbleCase> cases;
  for (int p : {1, 2, 3, 4}) {
    for (int64_t m : {1, 2, 4, 5, 8}) {
      cases.push_back({ScheduleKind::gpipe, p, m, 1});
      cases.push_back({ScheduleKind::one_f_one_b, p, m, 1});
    }
    for (int64_t v : {1, 2, 3})
      for (int64_t groups : {1, 2, 3})
        cases.push_back({ScheduleKind::interleaved, p, groups * p, v});
  }
  for (const BubbleCase& c : cases) {
    auto o = opts(c.kind, c.p, c.m, c.v);
    SCOPED_TRACE(str_cat(schedule_kind_name(c.kind), " p=", c.p, " m=", c.m, " v=", c.v));
    for (SimulationCosts costs : {SimulationCosts{1, 1}, SimulationCosts{1, 2}}) {
      SimulationResult r = simulate(o, all_stage_actions(o), costs);
      EXPECT_NEAR(r.bubble_fraction, theoretical_bubble(o), 1e-12);
      EXPECT_NEAR(r.makespan, (c.v * c.m + c.p - 1) * (costs.forward + costs.backward), 1e-9);
    }
  }
  EXPECT_DOUBLE_EQ(theoretical_bubble(opts(ScheduleKind::one_f_one_b, 4, 8)), 3.0 / 11.0);
  EXPECT_DOUBLE_EQ(theoretical_bubble(opts(ScheduleKind::interleaved, 4, 8, 2)), 3.0 / 19.0);
}

// GPipe keeps every micro-batch's activations; 1F1B at most p - s on stage s.
TEST(PipelineSchedule, LiveActivationsGPipeAgainstOneFOneB) {
  auto g = opts(ScheduleKind::gpipe, 4, 8);
  auto f = opts(ScheduleKind::one_f_one_b, 4, 8);
  EXPECT_EQ(simulate(g, all_stage_actions(g)).peak_live_per_stage, std::vector<int64_t>(4, 8));
  EXPECT_EQ(simulate(f, all_stage_actions(f)).peak_live_per_stage,
            (std::vector<int64_t>{4, 3, 2, 1}));
}

// Transports without message tags (NCCL) match a pair's messages by order: every schedule must
// post the messages from stage a to stage b in the same order on both ends.
TEST(PipelineSchedule, EachPairsMessagesAreSentAndReceivedInTheSameOrder) {
  for (ScheduleKind kind :
       {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::interleaved}) {
    for (int p : {2, 3, 4}) {
      for (int64_t m : {4, 8}) {
        ScheduleOptions o = opts(kind, p, m, kind == ScheduleKind::interleaved ? 2 : 1);
        if (kind == ScheduleKind::interleaved && m % p != 0) continue;
        auto lists = all_stage_actions(o);
        // (from, to) -> message tags in the sender's order, and in the receiver's.
        std::map<std::pair<int, int>, std::vector<int>> sent, received;
        for (int s = 0; s < p; ++s) {
          for (const Action& a : lists[s]) {
            int64_t vs = virtual_stage_of(p, s, a.chunk);
            if (a.kind == ActionKind::send_activation) {
              sent[{s, a.peer}].push_back(message_tag(o, a.microbatch, vs, false));
            } else if (a.kind == ActionKind::send_grad) {
              sent[{s, a.peer}].push_back(message_tag(o, a.microbatch, vs, true));
            } else if (a.kind == ActionKind::recv_activation) {
              received[{a.peer, s}].push_back(message_tag(o, a.microbatch, vs - 1, false));
            } else if (a.kind == ActionKind::recv_grad) {
              received[{a.peer, s}].push_back(message_tag(o, a.microbatch, vs + 1, true));
            }
          }
        }
        EXPECT_FALSE(sent.empty());
        EXPECT_EQ(sent, received) << schedule_kind_name(kind) << " p=" << p << " m=" << m;
      }
    }
  }
}

// NCCL's send completes only when the peer's receive runs, and a stream runs its operations
// in order. On one stream per stage, 1F1B deadlocks (stage 0 sends micro-batch 1's activation
// while stage 1 sends micro-batch 0's gradient); group calls rescue GPipe and 1F1B but not
// interleaving; one channel per peer and direction (PeerLinks) runs every schedule with the
// buffered transport's timing.
TEST(PipelineSchedule, OnlyOneChannelPerPeerAndDirectionRunsEverySchedule) {
  auto outcome = [](ScheduleOptions o, Transport t) -> std::string {
    try {
      SimulationResult r = simulate(o, all_stage_actions(o), {1, 2}, t);
      return std::abs(r.bubble_fraction - theoretical_bubble(o)) < 1e-12 ? "ok" : "slow";
    } catch (const Error& e) {
      return std::string(e.what()).find("deadlock") != std::string::npos ? "deadlock" : e.what();
    }
  };
  int64_t deadlocks[3] = {0, 0, 0}, cases = 0;
  for (ScheduleKind kind :
       {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::interleaved}) {
    for (int p : {2, 3, 4, 8}) {
      for (int64_t m : {1, 2, 4, 5, 8, 16}) {
        for (int64_t v : {1, 2, 3}) {
          if ((kind != ScheduleKind::interleaved && v > 1) ||
              (kind == ScheduleKind::interleaved && m % p != 0))
            continue;
          ScheduleOptions o = opts(kind, p, m, v);
          SCOPED_TRACE(str_cat(schedule_kind_name(kind), " p=", p, " m=", m, " v=", v));
          ++cases;
          EXPECT_EQ(outcome(o, Transport::directed), "ok");
          int i = 0;
          for (Transport t : {Transport::ordered, Transport::grouped}) {
            std::string r = outcome(o, t);
            EXPECT_TRUE(r == "ok" || r == "deadlock") << r;
            deadlocks[i++] += r == "deadlock";
          }
          if (kind == ScheduleKind::one_f_one_b && m > 1) {
            EXPECT_EQ(outcome(o, Transport::ordered), "deadlock");
            EXPECT_EQ(outcome(o, Transport::grouped), "ok");
          }
          if (kind == ScheduleKind::gpipe) EXPECT_EQ(outcome(o, Transport::grouped), "ok");
        }
      }
    }
  }
  EXPECT_EQ(cases, 75);
  EXPECT_EQ(deadlocks[0], 44);  // one stream: every 1F1B with m > 1, most interleaved
  EXPECT_EQ(deadlocks[1], 12);  // groups: interleaved with more micro-batches than stages
  EXPECT_EQ(outcome(opts(ScheduleKind::interleaved, 2, 4, 2), Transport::grouped), "deadlock");
}

TEST(PipelineSchedule, SimulatorReportsDeadlock) {
  auto o = opts(ScheduleKind::one_f_one_b, 2, 1);
  std::vector<std::vector<Action>> lists = {{{ActionKind::forward, 0, 0},
                                             {ActionKind::recv_grad, 0, 0, 1},
                                             {ActionKind::backward, 0, 0},
                                             {ActionKind::send_activation, 0, 0, 1}},
                                            {{ActionKind::recv_activation, 0, 0, 0},
                                             {ActionKind::forward, 0, 0},
                                             {ActionKind::backward, 0, 0},
                                             {ActionKind::send_grad, 0, 0, 0}}};
  try {
    simulate(o, lists);
    FAIL() << "expected a deadlock";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[pipeline.simulate] deadlock in 1f1b with 2 stages and 1 micro-batches: stage 0 "
                 "waits at action 1 (rg0.0<1); stage 1 waits at action 0 (ra0.0<0);");
  }
}

TEST(PipelineSchedule, SimulatorRejectsMissingWork) {
  auto o = opts(ScheduleKind::gpipe, 1, 2);
  std::vector<std::vector<Action>> lists = {{{ActionKind::backward, 0, 0}}};
  try {
    simulate(o, lists);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[pipeline.simulate] gpipe stage 0 action 0 (B0.0): runs before its forward");
  }
}

TEST(PipelineSchedule, RejectsBadOptions) {
  try {
    stage_actions(opts(ScheduleKind::interleaved, 2, 3, 2), 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[pipeline.schedule] interleaved: microbatches (3) must be a multiple of stages "
                 "(2) so that micro-batches cycle through the chunks in groups of stages; use 4 "
                 "micro-batches or the 1f1b schedule");
  }
  EXPECT_THROW(stage_actions(opts(ScheduleKind::one_f_one_b, 2, 2, 2), 0), Error);
  EXPECT_THROW(stage_actions(opts(ScheduleKind::gpipe, 0, 2), 0), Error);
  EXPECT_THROW(stage_actions(opts(ScheduleKind::gpipe, 2, 2), 2), Error);
  EXPECT_EQ(parse_schedule_kind("1f1b"), ScheduleKind::one_f_one_b);
  try {
    parse_schedule_kind("zb");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[pipeline.schedule] unknown schedule 'zb': use gpipe, 1f1b or interleaved");
  }
}

}  // namespace
}  // namespace strata::dist::pipeline
