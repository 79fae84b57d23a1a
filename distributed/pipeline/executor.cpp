// The pipeline executor: interprets a stage's action list. Sends are asynchronous and waited
// at the end of the step; receives block, so a list that the simulator accepts cannot hang.
#include "distributed/pipeline/executor.h"

#include <map>
#include <utility>

#include "core/autograd/node.h"
#include "core/error.h"

namespace strata::dist::pipeline {

using Key = std::pair<int64_t, int64_t>;  // (micro-batch, chunk)

struct PipelineExecutor::StepState {
  std::shared_ptr<PendingSends> pending = std::make_shared<PendingSends>();
  std::map<Key, ReceivedActivation> inputs;
  std::map<Key, Tensor> outputs;  // computed, not yet sent
  std::map<Key, SentActivation> sent;
  std::map<Key, Tensor> losses;  // last virtual stage
  double loss_sum = 0;
  int64_t live = 0;
};

PipelineExecutor::PipelineExecutor(Communicator& comm, const ScheduleOptions& options,
                                   std::vector<ChunkFn> chunks)
    : comm_(comm), options_(options), chunks_(std::move(chunks)) {
  validate(options_);
  check(comm.size() == options_.stages, "[pipeline] the communicator has ", comm.size(),
        " ranks but the schedule has ", options_.stages,
        " stages; split the world so that each pipeline group has one rank per stage");
  check(static_cast<int64_t>(chunks_.size()) == options_.virtual_stages, "[pipeline] stage ",
        comm.rank(), " got ", chunks_.size(), " model chunks for ", options_.virtual_stages,
        " virtual stages; give one chunk per virtual stage");
  actions_ = stage_actions(options_, comm.rank());
}

void PipelineExecutor::forward(const Action& a, StepState& st) {
  Key key{a.microbatch, a.chunk};
  int64_t vs = virtual_stage_of(options_.stages, comm_.rank(), a.chunk);
  Tensor input;
  if (vs > 0) {
    auto it = st.inputs.find(key);
    check_internal(it != st.inputs.end(), "[pipeline] forward without its received input");
    input = it->second.value;
  }
  Tensor out = chunks_[a.chunk](input, a.microbatch);
  check(out.defined(), "[pipeline] chunk ", a.chunk, " of stage ", comm_.rank(),
        " returned an undefined tensor for micro-batch ", a.microbatch);
  if (vs == options_.stages * options_.virtual_stages - 1) {
    check(out.numel() == 1, "[pipeline] the last stage's chunk must return the micro-batch's ",
          "loss (one element); it returned ", out.desc());
    st.loss_sum += out.item();
    st.losses[key] = out;
  } else {
    st.outputs[key] = out;
  }
  peak_live_ = std::max(peak_live_, ++st.live);
}

void PipelineExecutor::backward(const Action& a, StepState& st) {
  Key key{a.microbatch, a.chunk};
  Tensor root, seed;
  if (auto it = st.losses.find(key); it != st.losses.end()) {
    root = it->second;
    seed = full(root.shape(), 1.0 / static_cast<double>(options_.microbatches), root.dtype());
    st.losses.erase(it);
  } else {
    auto s = st.sent.find(key);
    check_internal(s != st.sent.end(), "[pipeline] backward before its activation was sent");
    root = s->second.token;
    seed = ones(root.shape(), root.dtype());
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
    case ActionKind::recv_activation:
      st.inputs[key] =
          recv_activation(comm_, a.peer, message_tag(options_, a.microbatch, vs - 1, false),
                          message_tag(options_, a.microbatch, vs, true), st.pending);
      break;
    case ActionKind::forward:
      forward(a, st);
      break;
    case ActionKind::send_activation: {
      auto it = st.outputs.find(key);
      check_internal(it != st.outputs.end(), "[pipeline] send before forward");
      st.sent[key] =
          send_activation(comm_, it->second, a.peer, message_tag(options_, a.microbatch, vs, false),
                          message_tag(options_, a.microbatch, vs + 1, true), st.pending);
      st.outputs.erase(it);
      break;
    }
    case ActionKind::recv_grad:
      recv_grad(comm_, st.sent.at(key));
      break;
    case ActionKind::backward:
      backward(a, st);
      break;
    case ActionKind::send_grad:
      finish_grad_send(comm_, st.inputs.at(key));
      st.inputs.erase(key);
      break;
  }
}

double PipelineExecutor::run() {
  StepState st;
  peak_live_ = 0;
  for (const Action& a : actions_) execute(a, st);
  st.pending->wait_all(comm_.timeout());
  int last =
      place_virtual_stage(options_.stages, options_.stages * options_.virtual_stages - 1).stage;
  Tensor loss = scalar_tensor(st.loss_sum / static_cast<double>(options_.microbatches), DType::f64);
  comm_.broadcast(loss, last);
  return loss.item();
}

}  // namespace strata::dist::pipeline
