// The pipeline executor: interprets a stage's action list. Sends are asynchronous; receives
// block, so a list that the simulator accepts cannot hang. Buffers are released as soon as
// their transfer is known to be done, so a stage holds only its live micro-batches.
#include "distributed/pipeline/executor.h"

#include <map>
#include <utility>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/error.h"

namespace strata::dist::pipeline {

using Key = std::pair<int64_t, int64_t>;  // (micro-batch, chunk)

struct PipelineExecutor::StepState {
  std::shared_ptr<PendingSends> pending = std::make_shared<PendingSends>();  // gradient sends
  std::map<Key, ReceivedActivation> inputs;
  std::map<Key, Tensor> outputs;  // computed, not yet sent
  std::map<Key, SentActivation> sent;
  // Each activation send on its own, waited once its gradient came back (so it is done).
  std::map<Key, std::shared_ptr<PendingSends>> activation_sends;
  std::map<Key, Tensor> losses;  // last virtual stage
  // Recomputation: the random streams' state before each forward, and the gradient-less
  // output that was sent (a leaf, so that backward through the send can deliver its grad).
  std::map<Key, std::vector<Generator::State>> rng;
  std::map<Key, Tensor> sent_leaves;
  double loss_sum = 0;
  int64_t live = 0;
};

PipelineExecutor::PipelineExecutor(Communicator& comm, const ScheduleOptions& options,
                                   std::vector<ChunkFn> chunks, ExecutorOptions executor_options)
    : comm_(comm),
      options_(options),
      chunks_(std::move(chunks)),
      exec_(std::move(executor_options)) {
  validate(options_);
  check(comm.size() == options_.stages, "[pipeline] the communicator has ", comm.size(),
        " ranks but the schedule has ", options_.stages,
        " stages; split the world so that each pipeline group has one rank per stage");
  check(static_cast<int64_t>(chunks_.size()) == options_.virtual_stages, "[pipeline] stage ",
        comm.rank(), " got ", chunks_.size(), " model chunks for ", options_.virtual_stages,
        " virtual stages; give one chunk per virtual stage");
  check(exec_.generators.empty() ||
            static_cast<int64_t>(exec_.generators.size()) == options_.virtual_stages,
        "[pipeline] stage ", comm.rank(), " got generator lists for ", exec_.generators.size(),
        " chunks but has ", options_.virtual_stages,
        " chunks; give one list per chunk (empty lists for chunks without randomness)");
  for (size_t c = 0; c < exec_.generators.size(); ++c) {
    for (Generator* g : exec_.generators[c]) {
      check(g != nullptr, "[pipeline] stage ", comm.rank(), " chunk ", c,
            " has a null generator; pass the address of each random stream the chunk uses");
    }
  }
  actions_ = stage_actions(options_, comm.rank());
  if (options_.stages > 1) {
    links_ = std::make_unique<PeerLinks>(comm, options_.kind == ScheduleKind::interleaved);
  }
}

bool PipelineExecutor::is_last(int64_t chunk) const {
  return virtual_stage_of(options_.stages, comm_.rank(), chunk) ==
         options_.stages * options_.virtual_stages - 1;
}

std::vector<Generator::State> PipelineExecutor::rng_state(int64_t chunk) const {
  std::vector<Generator::State> out;
  if (exec_.generators.empty()) return out;
  for (const Generator* g : exec_.generators[chunk]) out.push_back(g->state());
  return out;
}

void PipelineExecutor::set_rng_state(int64_t chunk, const std::vector<Generator::State>& states) {
  for (size_t i = 0; i < states.size(); ++i) exec_.generators[chunk][i]->set_state(states[i]);
}

Tensor PipelineExecutor::input_of(const Action& a, StepState& st) const {
  if (virtual_stage_of(options_.stages, comm_.rank(), a.chunk) == 0) return Tensor();
  auto it = st.inputs.find({a.microbatch, a.chunk});
  check_internal(it != st.inputs.end(), "[pipeline] forward without its received input");
  return it->second.value;
}

void PipelineExecutor::forward(const Action& a, StepState& st) {
  Key key{a.microbatch, a.chunk};
  Timeline::Scope span(exec_.timeline.get(), str_cat("F", a.microbatch, ".", a.chunk), "compute");
  Tensor input = input_of(a, st);
  Tensor out;
  if (exec_.recompute) {
    st.rng[key] = rng_state(a.chunk);
    NoGradGuard no_grad;
    out = chunks_[a.chunk](input, a.microbatch);
  } else {
    out = chunks_[a.chunk](input, a.microbatch);
  }
  check(out.defined(), "[pipeline] chunk ", a.chunk, " of stage ", comm_.rank(),
        " returned an undefined tensor for micro-batch ", a.microbatch);
  if (is_last(a.chunk)) {
    check(out.numel() == 1, "[pipeline] the last stage's chunk must return the micro-batch's ",
          "loss (one element); it returned ", out.desc());
    st.loss_sum += out.item();
    st.losses[key] = out;
  } else if (exec_.recompute) {
    // A fresh leaf: backward through its send then yields exactly the received gradient.
    Tensor leaf = out.detach().set_requires_grad(true);
    st.sent_leaves[key] = leaf;
    st.outputs[key] = leaf;
  } else {
    st.outputs[key] = out;
  }
  peak_live_ = std::max(peak_live_, ++st.live);
}

std::pair<Tensor, Tensor> PipelineExecutor::recompute(const Action& a, StepState& st) {
  Key key{a.microbatch, a.chunk};
  Tensor seed;
  if (!is_last(a.chunk)) {
    // The gradient of the sent activation, through the send's autograd op.
    auto s = st.sent.find(key);
    check_internal(s != st.sent.end(), "[pipeline] backward before its activation was sent");
    Tensor leaf = st.sent_leaves.at(key);
    seed = grad({s->second.token}, {leaf},
                {ones(s->second.token.shape(), leaf.dtype(), s->second.token.device())})[0];
    st.sent.erase(s);
    st.sent_leaves.erase(key);
  }
  std::vector<Generator::State> now = rng_state(a.chunk);
  set_rng_state(a.chunk, st.rng.at(key));
  st.rng.erase(key);
  Tensor out = chunks_[a.chunk](input_of(a, st), a.microbatch);
  set_rng_state(a.chunk, now);
  if (is_last(a.chunk)) {
    st.losses.erase(key);
    seed = full(out.shape(), exec_.loss_scale / static_cast<double>(options_.microbatches),
                out.dtype(), out.device());
  }
  return {out, seed};
}

void PipelineExecutor::backward(const Action& a, StepState& st) {
  Key key{a.microbatch, a.chunk};
  Timeline::Scope span(exec_.timeline.get(), str_cat("B", a.microbatch, ".", a.chunk), "compute");
  Tensor root, seed;
  if (exec_.recompute) {
    std::tie(root, seed) = recompute(a, st);
  } else if (auto it = st.losses.find(key); it != st.losses.end()) {
    root = it->second;
    seed = full(root.shape(), exec_.loss_scale / static_cast<double>(options_.microbatches),
                root.dtype(), root.device());
    st.losses.erase(it);
  } else {
    auto s = st.sent.find(key);
    check_internal(s != st.sent.end(), "[pipeline] backward before its activation was sent");
    root = s->second.token;
    seed = ones(root.shape(), root.dtype(), root.device());
    st.sent.erase(s);
  }
  // A root that needs no gradient (nothing upstream is trainable) has nothing to do.
  if (root.requires_grad()) run_backward({root}, {seed}, false, false);
  --st.live;
}

void PipelineExecutor::execute(const Action& a, StepState& st) {
  Key key{a.microbatch, a.chunk};
  int64_t vs = virtual_stage_of(options_.stages, comm_.rank(), a.chunk);
  switch (a.kind) {
    case ActionKind::recv_activation: {
      Timeline::Scope span(exec_.timeline.get(), str_cat("ra", a.microbatch), "wait");
      st.inputs[key] =
          recv_activation(links_->with(a.peer), message_tag(options_, a.microbatch, vs - 1, false),
                          message_tag(options_, a.microbatch, vs, true), st.pending);
      break;
    }
    case ActionKind::forward:
      forward(a, st);
      break;
    case ActionKind::send_activation: {
      auto it = st.outputs.find(key);
      check_internal(it != st.outputs.end(), "[pipeline] send before forward");
      auto sends = std::make_shared<PendingSends>();
      st.sent[key] = send_activation(links_->with(a.peer), it->second,
                                     message_tag(options_, a.microbatch, vs, false),
                                     message_tag(options_, a.microbatch, vs + 1, true), sends);
      st.activation_sends[key] = sends;
      st.outputs.erase(it);
      break;
    }
    case ActionKind::recv_grad: {
      Timeline::Scope span(exec_.timeline.get(), str_cat("rg", a.microbatch), "wait");
      recv_grad(st.sent.at(key));
      // The peer received the activation before it sent this gradient: the send is done.
      st.activation_sends.at(key)->wait_all(comm_.timeout());
      st.activation_sends.erase(key);
      break;
    }
    case ActionKind::backward:
      backward(a, st);
      st.pending->release_completed();
      break;
    case ActionKind::send_grad:
      finish_grad_send(st.inputs.at(key));
      st.inputs.erase(key);
      st.pending->release_completed();
      break;
  }
}

double PipelineExecutor::run() {
  StepState st;
  peak_live_ = 0;
  if (links_) links_->follow(comm_);
  for (const Action& a : actions_) execute(a, st);
  for (auto& [key, sends] : st.activation_sends) sends->wait_all(comm_.timeout());
  st.pending->wait_all(comm_.timeout());
  int last =
      place_virtual_stage(options_.stages, options_.stages * options_.virtual_stages - 1).stage;
  Tensor loss = scalar_tensor(st.loss_sum / static_cast<double>(options_.microbatches), DType::f64,
                              comm_.device());
  comm_.broadcast(loss, last);
  return loss.item();
}

}  // namespace strata::dist::pipeline
