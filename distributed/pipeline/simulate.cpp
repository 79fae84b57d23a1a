// The schedule simulator: runs every stage's action list against the others (asynchronous
// sends, blocking receives, fixed compute costs, buffered or in-order rendezvous transport) to
// prove it deadlock-free and time it.
#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

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
  bool recv_posted = false;  // the receive at `next` is queued (in-order transports)
  std::set<Key> inputs, grads, forwarded, backwarded;
};

/// A send or receive launched on a stage's stream (in-order transports).
struct ChannelOp {
  bool send;
  int from, to, tag;
  double posted;
  bool done = false;
  int peer() const { return send ? to : from; }
};

/// Operations launched together; a stage's stream runs its groups one after another.
struct Group {
  int64_t id;
  std::vector<ChannelOp> ops;
};

class Simulator {
 public:
  Simulator(const ScheduleOptions& o, const std::vector<std::vector<Action>>& actions,
            const SimulationCosts& costs, Transport transport)
      : o_(o),
        actions_(actions),
        costs_(costs),
        transport_(transport),
        stages_(o.stages),
        pending_(o.stages),
        waiting_for_(o.stages, -1) {}

  SimulationResult run();

 private:
  // Runs the stage's next action if it can; false when it waits for a message.
  bool step(int s);
  // A receive: launches it (once) and tells whether its message has arrived.
  bool receive(int s, int from, int tag);
  // Launches `ops` as one group on stage s's stream; returns the group's id.
  int64_t launch(int s, std::vector<ChannelOp> ops);
  // Completes matching operations of the stages' running groups until none is left.
  void match();
  bool match_one(int s, std::vector<ChannelOp>& group, ChannelOp& op);
  std::tuple<int, int, int> stream_of(int s, const ChannelOp& op) const {
    if (transport_ != Transport::directed) return {s, -1, -1};
    return {s, op.peer(), op.send ? 1 : 0};
  }
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
  Transport transport_;
  std::vector<StageState> stages_;
  std::map<std::tuple<int, int, int>, double> messages_;  // (from, to, tag) -> delivery time
  // (stage, peer, sends) -> groups launched and not complete; peer and sends are -1 when a
  // stage has one stream for all its operations.
  std::map<std::tuple<int, int, int>, std::deque<Group>> streams_;
  std::vector<std::vector<ChannelOp>> pending_;  // per stage: sends awaiting a group
  std::vector<int64_t> waiting_for_;             // per stage: group of its receive
  std::set<int64_t> completed_;
  int64_t next_group_ = 0;
};

int64_t Simulator::launch(int s, std::vector<ChannelOp> ops) {
  int64_t id = next_group_++;
  streams_[stream_of(s, ops.front())].push_back({id, std::move(ops)});
  match();
  return id;
}

bool Simulator::receive(int s, int from, int tag) {
  StageState& st = stages_[s];
  if (transport_ != Transport::buffered && !st.recv_posted) {
    std::vector<ChannelOp> ops;
    if (transport_ == Transport::grouped) ops = std::exchange(pending_[s], {});
    ops.push_back({false, from, s, tag, st.clock});
    waiting_for_[s] = launch(s, std::move(ops));
  }
  st.recv_posted = true;
  if (transport_ != Transport::buffered && !completed_.count(waiting_for_[s])) return false;
  auto it = messages_.find({from, s, tag});
  if (it == messages_.end()) return false;
  st.recv_posted = false;
  st.clock = std::max(st.clock, it->second);
  messages_.erase(it);
  return true;
}

bool Simulator::match_one(int s, std::vector<ChannelOp>& group, ChannelOp& op) {
  // Within a group, operations progress in order per peer and direction only.
  for (ChannelOp& earlier : group) {
    if (&earlier == &op) break;
    if (!earlier.done && earlier.send == op.send && earlier.peer() == op.peer()) return false;
  }
  ChannelOp mirror{!op.send, op.send ? s : op.peer(), op.send ? op.peer() : s, op.tag, 0};
  auto it = streams_.find(stream_of(op.peer(), mirror));
  if (it == streams_.end() || it->second.empty()) return false;
  for (ChannelOp& other : it->second.front().ops) {
    if (other.done || other.send == op.send || other.peer() != s) continue;
    check(other.tag == op.tag, "[pipeline.simulate] ", schedule_kind_name(o_.kind),
          ": an in-order transport would deliver message tag ", op.send ? op.tag : other.tag,
          " from stage ", op.send ? op.from : other.from, " as tag ", op.send ? other.tag : op.tag,
          "; both ends must post a pair's messages in one order");
    messages_[{op.from, op.to, op.tag}] = std::max(op.posted, other.posted);
    op.done = other.done = true;
    return true;
  }
  return false;
}

void Simulator::match() {
  for (bool matched = true; matched;) {
    matched = false;
    for (auto& [key, groups] : streams_) {
      if (groups.empty()) continue;
      for (ChannelOp& op : groups.front().ops) {
        if (!op.done && match_one(std::get<0>(key), groups.front().ops, op)) matched = true;
      }
    }
    for (auto& [key, groups] : streams_) {
      if (groups.empty()) continue;
      const auto& ops = groups.front().ops;
      if (!std::all_of(ops.begin(), ops.end(), [](const ChannelOp& o) { return o.done; })) continue;
      completed_.insert(groups.front().id);
      groups.pop_front();
      matched = true;
    }
  }
}

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
    if (!receive(s, a.peer, message_tag(o_, a.microbatch, sender_vs, grad))) return false;
    (grad ? st.grads : st.inputs).insert(key);
  } else if (is_send) {
    require((grad ? st.backwarded : st.forwarded).count(key) == 1, s, a,
            "sends data that was not computed yet");
    ChannelOp op{true, s, a.peer, message_tag(o_, a.microbatch, vs, grad), st.clock};
    if (transport_ == Transport::buffered) messages_[{op.from, op.to, op.tag}] = op.posted;
    if (transport_ == Transport::ordered || transport_ == Transport::directed) launch(s, {op});
    if (transport_ == Transport::grouped) pending_[s].push_back(op);
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
      if (stages_[s].next == actions_[s].size() && !pending_[s].empty()) {
        launch(s, std::exchange(pending_[s], {}));  // the step's last sends, waited at its end
        progress = true;
      }
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
  for (auto& [key, groups] : streams_) {
    check(groups.empty(), "[pipeline.simulate] deadlock in ", schedule_kind_name(o_.kind), " with ",
          o_.stages, " stages and ", o_.microbatches, " micro-batches: stage ", std::get<0>(key),
          " ends its step with ", groups.front().ops.size(),
          " operations launched that never complete");
  }
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
                          const SimulationCosts& costs, Transport transport) {
  validate(options);
  return Simulator(options, actions, costs, transport).run();
}

}  // namespace strata::dist::pipeline
