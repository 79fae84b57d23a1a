// Pipeline schedules: which micro-batch each stage computes when, as plain action lists, and
// a simulator that proves a set of lists deadlock-free and measures its bubble.
#include "distributed/pipeline/schedule.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "core/error.h"

namespace strata::dist::pipeline {

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::gpipe:
      return "gpipe";
    case ScheduleKind::one_f_one_b:
      return "1f1b";
    case ScheduleKind::interleaved:
      return "interleaved";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  for (ScheduleKind k : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::interleaved})
    if (name == schedule_kind_name(k)) return k;
  throw Error(
      str_cat("[pipeline.schedule] unknown schedule '", name, "': use gpipe, 1f1b or interleaved"));
}

std::string action_name(const Action& a, bool show_chunk) {
  std::string mb = std::to_string(a.microbatch);
  if (show_chunk) mb = str_cat(mb, ".", a.chunk);
  switch (a.kind) {
    case ActionKind::forward:
      return str_cat("F", mb);
    case ActionKind::backward:
      return str_cat("B", mb);
    case ActionKind::send_activation:
      return str_cat("sa", mb, ">", a.peer);
    case ActionKind::recv_activation:
      return str_cat("ra", mb, "<", a.peer);
    case ActionKind::send_grad:
      return str_cat("sg", mb, ">", a.peer);
    case ActionKind::recv_grad:
      return str_cat("rg", mb, "<", a.peer);
  }
  return "?";
}

void validate(const ScheduleOptions& o) {
  const char* name = schedule_kind_name(o.kind);
  check(o.stages >= 1, "[pipeline.schedule] ", name, ": stages is ", o.stages,
        "; it must be at least 1");
  check(o.microbatches >= 1, "[pipeline.schedule] ", name, ": microbatches is ", o.microbatches,
        "; it must be at least 1");
  check(o.virtual_stages >= 1, "[pipeline.schedule] ", name, ": virtual_stages is ",
        o.virtual_stages, "; it must be at least 1");
  if (o.kind != ScheduleKind::interleaved) {
    check(o.virtual_stages == 1, "[pipeline.schedule] ", name, ": virtual_stages is ",
          o.virtual_stages, " but only the interleaved schedule runs several chunks per stage; ",
          "set virtual_stages = 1 or use interleaved");
    return;
  }
  check(o.microbatches % o.stages == 0, "[pipeline.schedule] interleaved: microbatches (",
        o.microbatches, ") must be a multiple of stages (", o.stages,
        ") so that micro-batches cycle through the chunks in groups of stages; use ",
        (o.microbatches / o.stages + 1) * o.stages, " micro-batches or the 1f1b schedule");
}

Placement place_virtual_stage(int stages, int64_t vs) {
  return {static_cast<int>(vs % stages), vs / stages};
}

int64_t virtual_stage_of(int stages, int stage, int64_t chunk) { return chunk * stages + stage; }

int message_tag(const ScheduleOptions& o, int64_t microbatch, int64_t sender_vs, bool grad) {
  int64_t total = o.stages * o.virtual_stages;
  return static_cast<int>((microbatch * total + sender_vs) * 2 + (grad ? 1 : 0));
}

namespace {

struct Compute {
  bool forward;
  int64_t microbatch;
  int64_t chunk;
};

std::vector<Compute> gpipe_order(const ScheduleOptions& o) {
  std::vector<Compute> out;
  for (int64_t mb = 0; mb < o.microbatches; ++mb) out.push_back({true, mb, 0});
  for (int64_t mb = 0; mb < o.microbatches; ++mb) out.push_back({false, mb, 0});
  return out;
}

// Warm-up forwards fill the pipe below this stage; then one forward, one backward; then the
// remaining backwards. At most stages - stage micro-batches are live at once.
std::vector<Compute> one_f_one_b_order(const ScheduleOptions& o, int stage) {
  int64_t m = o.microbatches;
  int64_t warmup = std::min<int64_t>(o.stages - stage - 1, m);
  std::vector<Compute> out;
  for (int64_t mb = 0; mb < warmup; ++mb) out.push_back({true, mb, 0});
  for (int64_t i = 0; i < m - warmup; ++i) {
    out.push_back({true, warmup + i, 0});
    out.push_back({false, i, 0});
  }
  for (int64_t mb = m - warmup; mb < m; ++mb) out.push_back({false, mb, 0});
  return out;
}

// Megatron-LM's forward_backward_pipelining_with_interleaving: the k-th forward (backward)
// of a stage runs chunk (k mod p*v) / p (reversed for backward) on micro-batch
// (k / (p*v)) * p + k mod p.
Compute interleaved_item(const ScheduleOptions& o, int64_t k, bool forward) {
  int64_t p = o.stages, v = o.virtual_stages;
  int64_t chunk = (k % (p * v)) / p;
  if (!forward) chunk = v - chunk - 1;
  return {forward, (k / (p * v)) * p + k % p, chunk};
}

std::vector<Compute> interleaved_order(const ScheduleOptions& o, int stage) {
  int64_t p = o.stages, v = o.virtual_stages, total = o.microbatches * v;
  int64_t warmup = total;
  if (o.microbatches != p) {
    warmup = std::min(total, (p - stage - 1) * 2 + (v - 1) * p);
  }
  std::vector<Compute> out;
  for (int64_t k = 0; k < warmup; ++k) out.push_back(interleaved_item(o, k, true));
  for (int64_t k = 0; k < total - warmup; ++k) {
    out.push_back(interleaved_item(o, k + warmup, true));
    out.push_back(interleaved_item(o, k, false));
  }
  for (int64_t k = total - warmup; k < total; ++k) out.push_back(interleaved_item(o, k, false));
  return out;
}

}  // namespace

std::vector<Action> stage_actions(const ScheduleOptions& o, int stage) {
  validate(o);
  check(stage >= 0 && stage < o.stages, "[pipeline.schedule] stage ", stage,
        " is out of range for ", o.stages, " stages");
  std::vector<Compute> order = o.kind == ScheduleKind::gpipe         ? gpipe_order(o)
                               : o.kind == ScheduleKind::one_f_one_b ? one_f_one_b_order(o, stage)
                                                                     : interleaved_order(o, stage);
  int64_t last_vs = o.stages * o.virtual_stages - 1;
  std::vector<Action> out;
  for (const Compute& c : order) {
    int64_t vs = virtual_stage_of(o.stages, stage, c.chunk);
    int prev = vs > 0 ? place_virtual_stage(o.stages, vs - 1).stage : -1;
    int next = vs < last_vs ? place_virtual_stage(o.stages, vs + 1).stage : -1;
    if (c.forward) {
      if (prev >= 0) out.push_back({ActionKind::recv_activation, c.microbatch, c.chunk, prev});
      out.push_back({ActionKind::forward, c.microbatch, c.chunk});
      if (next >= 0) out.push_back({ActionKind::send_activation, c.microbatch, c.chunk, next});
    } else {
      if (next >= 0) out.push_back({ActionKind::recv_grad, c.microbatch, c.chunk, next});
      out.push_back({ActionKind::backward, c.microbatch, c.chunk});
      if (prev >= 0) out.push_back({ActionKind::send_grad, c.microbatch, c.chunk, prev});
    }
  }
  return out;
}

std::vector<std::vector<Action>> all_stage_actions(const ScheduleOptions& o) {
  std::vector<std::vector<Action>> out;
  for (int s = 0; s < o.stages; ++s) out.push_back(stage_actions(o, s));
  return out;
}

double theoretical_bubble(const ScheduleOptions& o) {
  double p = o.stages, vm = static_cast<double>(o.virtual_stages * o.microbatches);
  return (p - 1) / (vm + p - 1);
}

}  // namespace strata::dist::pipeline
