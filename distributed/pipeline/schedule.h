// Pipeline schedules as plain per-stage action lists (GPipe, 1F1B, interleaved 1F1B), and a
// simulator that runs all stages' lists against each other with no communicator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::dist::pipeline {

enum class ScheduleKind { gpipe, one_f_one_b, interleaved };

/// "gpipe", "1f1b" or "interleaved"; parse_schedule_kind is its inverse (throws on others).
const char* schedule_kind_name(ScheduleKind kind);
ScheduleKind parse_schedule_kind(const std::string& name);

enum class ActionKind { forward, backward, send_activation, recv_activation, send_grad, recv_grad };

/// One step of one stage. `chunk` is the local model chunk; chunk c on stage s runs virtual
/// stage c * stages + s (Megatron's interleaving). `peer` is the stage on the other end of a
/// send/recv (-1 for compute).
struct Action {
  ActionKind kind;
  int64_t microbatch;
  int64_t chunk;
  int peer = -1;
  bool operator==(const Action& other) const = default;
};

/// "F3", "B0.1" (micro-batch 0, chunk 1), "sa2>1" (send activation of micro-batch 2 to stage 1),
/// "ra2<0", "sg2>0", "rg2<1": how tests spell action lists.
std::string action_name(const Action& a, bool show_chunk = false);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::one_f_one_b;
  int stages = 1;              // p
  int64_t microbatches = 1;    // m
  int64_t virtual_stages = 1;  // v: model chunks per stage (interleaved only; else 1)
};

/// Throws an Error starting with "[pipeline.schedule]" when the options cannot be scheduled.
void validate(const ScheduleOptions& options);

/// The ordered actions of `stage`. Each forward is preceded by its recv_activation and
/// followed by its send_activation (where the neighbour exists); each backward likewise by
/// recv_grad and send_grad. Sends are asynchronous; receives block.
std::vector<Action> stage_actions(const ScheduleOptions& options, int stage);
/// stage_actions for every stage.
std::vector<std::vector<Action>> all_stage_actions(const ScheduleOptions& options);

/// The stage and chunk that run virtual stage `vs` (0 .. stages * virtual_stages - 1).
struct Placement {
  int stage;
  int64_t chunk;
};
Placement place_virtual_stage(int stages, int64_t vs);
int64_t virtual_stage_of(int stages, int stage, int64_t chunk);

/// A message tag unique per (micro-batch, virtual stage sending it, direction).
int message_tag(const ScheduleOptions& options, int64_t microbatch, int64_t sender_vs, bool grad);

struct SimulationCosts {
  double forward = 1;   // per chunk forward
  double backward = 2;  // per chunk backward
};

/// How the simulated transport delivers messages.
enum class Transport {
  /// Sends complete on their own (MPI's isend, the thread communicator): a receive waits
  /// only for its message.
  buffered,
  /// One in-order stream per stage where each send and receive is launched on its own and
  /// completes only when the peer's matching operation runs (rendezvous): NCCL without group
  /// calls. A send to one neighbour then holds up everything launched after it.
  ordered,
  /// Like `ordered`, but sends wait on the host until the next receive (or the end of the
  /// step) and launch in one group with it; a group's operations progress concurrently, in
  /// order only per peer and direction, and the group completes as a whole: NCCL with
  /// ncclGroupStart/End. Enough for GPipe and 1F1B, not for interleaved 1F1B: a group's
  /// sends can wait for a receive the peer posts only after its own group completes.
  grouped,
  /// One in-order rendezvous channel per peer and direction, each its own stream: what the
  /// pipeline uses (PeerLinks, one two-rank communicator per direction of each neighbour
  /// pair). With a pair's messages posted in one order on both ends, this behaves as
  /// `buffered`.
  directed,
};

struct SimulationResult {
  double makespan = 0;
  double bubble_fraction = 0;         // 1 - busy / (stages * makespan)
  std::vector<double> busy;           // per stage
  int64_t peak_live_activations = 0;  // max over stages of forwards not yet backwarded
  std::vector<int64_t> peak_live_per_stage;
};

/// Executes every stage's list against the others over `transport` (receives block).
/// Throws an Error "[pipeline.simulate] deadlock ..." naming each stuck stage's next action,
/// when an action's data (activation, gradient, forward) is missing, or when an in-order
/// transport would pair a send with another message's receive.
SimulationResult simulate(const ScheduleOptions& options,
                          const std::vector<std::vector<Action>>& actions,
                          const SimulationCosts& costs = {},
                          Transport transport = Transport::buffered);

/// The bubble fraction of theory: (p-1)/(v*m+p-1).
double theoretical_bubble(const ScheduleOptions& options);

}  // namespace strata::dist::pipeline
