// The schedule simulator: runs every stage's action list against the others (asynchronous
// sends, blocking receives, fixed compute costs) to prove it deadlock-free and time it.
#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "distributed/pipeline/schedule.h"

namespace strata::dist::pipeline {
namespace {

using Key = std::pair<int64_t, int64_t>;  // (micro-batch, chunk)

struct StageState {
  size_t next = 0;
  double clock = 0;
  double busy = 0;
  int64_t live = 0, peak_live = 0;
  std::set<Key> inputs, grads, forwarded, backwarded;
};

class Simulator {
 public:
  Simulator(const ScheduleOptions& o, const std::vector<std::vector<Action>>& actions,
            const SimulationCosts& costs)
      : o_(o), actions_(actions), costs_(costs), stages_(o.stages) {}

  SimulationResult run();

 private:
  // Runs the stage's next action if it can; false when it waits for a message.
  bool step(int s);
  void require(bool cond, int s, const Action& a, const char* what) const {
    check(cond, "[pipeline.simulate] ", schedule_kind_name(o_.kind), " stage ", s, " action ",
          stages_[s].next, " (", action_name(a, true), "): ", what);
  }
  int expected_peer(int s, const Action& a, bool towards_next) const {
    int64_t vs = virtual_stage_of(o_.stages, s, a.chunk);
    int64_t other = towards_next ? vs + 1 : vs - 1;
    if (other < 0 || other >= o_.stages * o_.virtual_stages) return -1;
    return place_virtual_stage(o_.stages, other).stage;
  }

  const ScheduleOptions& o_;
  const std::vector<std::vector<Action>>& actions_;
  SimulationCosts costs_;
  std::vector<StageState> stages_;
  std::map<std::tuple<int, int, int>, double> messages_;  // (from, to, tag) -> send time
};

bool Simulator::step(int s) {
  StageState& st = stages_[s];
  const Action& a = actions_[s][st.next];
  Key key{a.microbatch, a.chunk};
  int64_t vs = virtual_stage_of(o_.stages, s, a.chunk);
  int64_t last_vs = o_.stages * o_.virtual_stages - 1;
  bool is_recv = a.kind == ActionKind::recv_activation || a.kind == ActionKind::recv_grad;
  bool is_send = a.kind == ActionKind::send_activation || a.kind == ActionKind::send_grad;
  bool grad = a.kind == ActionKind::recv_grad || a.kind == ActionKind::send_grad;
  if (is_recv || is_send) {
    bool towards_next =
        (a.kind == ActionKind::send_activation) || (a.kind == ActionKind::recv_grad);
    require(a.peer == expected_peer(s, a, towards_next), s, a, "wrong or missing peer");
  }
  if (is_recv) {
    int64_t sender_vs = a.kind == ActionKind::recv_activation ? vs - 1 : vs + 1;
    auto it = messages_.find({a.peer, s, message_tag(o_, a.microbatch, sender_vs, grad)});
    if (it == messages_.end()) return false;
    st.clock = std::max(st.clock, it->second);
    messages_.erase(it);
    (grad ? st.grads : st.inputs).insert(key);
  } else if (is_send) {
    require((grad ? st.backwarded : st.forwarded).count(key) == 1, s, a,
            "sends data that was not computed yet");
    messages_[{s, a.peer, message_tag(o_, a.microbatch, vs, grad)}] = st.clock;
  } else if (a.kind == ActionKind::forward) {
    require(vs == 0 || st.inputs.count(key) == 1, s, a, "its input activation was not received");
    require(st.forwarded.insert(key).second, s, a, "runs twice");
    st.clock += costs_.forward;
    st.busy += costs_.forward;
    st.peak_live = std::max(st.peak_live, ++st.live);
  } else {
    require(st.forwarded.count(key) == 1, s, a, "runs before its forward");
    require(vs == last_vs || st.grads.count(key) == 1, s, a, "its gradient was not received");
    require(st.backwarded.insert(key).second, s, a, "runs twice");
    st.clock += costs_.backward;
    st.busy += costs_.backward;
    --st.live;
  }
  ++st.next;
  return true;
}

SimulationResult Simulator::run() {
  check(static_cast<int>(actions_.size()) == o_.stages, "[pipeline.simulate] got ", actions_.size(),
        " action lists for ", o_.stages, " stages");
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < o_.stages; ++s) {
      while (stages_[s].next < actions_[s].size() && step(s)) progress = true;
    }
  }
  std::string stuck;
  for (int s = 0; s < o_.stages; ++s) {
    if (stages_[s].next < actions_[s].size())
      stuck += str_cat(" stage ", s, " waits at action ", stages_[s].next, " (",
                       action_name(actions_[s][stages_[s].next], true), ");");
  }
  check(stuck.empty(), "[pipeline.simulate] deadlock in ", schedule_kind_name(o_.kind), " with ",
        o_.stages, " stages and ", o_.microbatches, " micro-batches:", stuck);
  check(messages_.empty(), "[pipeline.simulate] ", messages_.size(),
        " messages were sent but never received");
  SimulationResult r;
  double busy = 0;
  for (int s = 0; s < o_.stages; ++s) {
    int64_t want = o_.microbatches * o_.virtual_stages;
    check(static_cast<int64_t>(stages_[s].backwarded.size()) == want, "[pipeline.simulate] stage ",
          s, " ran ", stages_[s].backwarded.size(), " backwards; it must run ", want,
          " (every micro-batch on every chunk)");
    r.makespan = std::max(r.makespan, stages_[s].clock);
    r.busy.push_back(stages_[s].busy);
    r.peak_live_per_stage.push_back(stages_[s].peak_live);
    r.peak_live_activations = std::max(r.peak_live_activations, stages_[s].peak_live);
    busy += stages_[s].busy;
  }
  r.bubble_fraction = 1 - busy / (o_.stages * r.makespan);
  return r;
}

}  // namespace

SimulationResult simulate(const ScheduleOptions& options,
                          const std::vector<std::vector<Action>>& actions,
                          const SimulationCosts& costs) {
  validate(options);
  return Simulator(options, actions, costs).run();
}

}  // namespace strata::dist::pipeline
