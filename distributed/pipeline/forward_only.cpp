// The forward-only pipeline pass: blocking sends of a shape header and then the data, in
// virtual-stage order, so no stage can wait on one that waits on it.
#include "distributed/pipeline/forward_only.h"

#include <vector>

#include "core/error.h"
#include "distributed/pipeline/p2p.h"
#include "distributed/pipeline/schedule.h"

namespace strata::dist::pipeline {
namespace {

// Tags above the training schedule's (message_tag), which never reach them.
constexpr int kHeaderTag = 1 << 29, kDataTag = (1 << 29) + 1;

void send_value(Communicator& pipe, const Tensor& x, int peer) {
  pipe.send(shape_header("pipeline.forward", x, pipe.device()), peer, kHeaderTag);
  pipe.send(x.contiguous(), peer, kDataTag);
}

Tensor recv_value(Communicator& pipe, int peer) {
  Tensor header = empty_shape_header(pipe.device());
  pipe.recv(header, peer, kHeaderTag);
  Tensor x = tensor_for_header("pipeline.forward", header, pipe.device(), str_cat("stage ", peer));
  pipe.recv(x, peer, kDataTag);
  return x;
}

}  // namespace

double pipeline_forward(Communicator& pipe, int64_t virtual_stages,
                        const std::function<Tensor(int64_t vs, const Tensor& input)>& fn) {
  const int stages = pipe.size(), me = pipe.rank();
  const int64_t total = stages * virtual_stages;
  Tensor carried;  // the activation entering the next virtual stage, when it is ours
  double result = 0;
  for (int64_t vs = 0; vs < total; ++vs) {
    int holder = place_virtual_stage(stages, vs).stage;
    if (holder != me) continue;
    int prev = vs > 0 ? place_virtual_stage(stages, vs - 1).stage : me;
    Tensor input = prev == me ? carried : recv_value(pipe, prev);
    Tensor out = fn(vs, input);
    if (vs == total - 1) {
      check(out.numel() == 1, "[pipeline.forward] the last stage must return one value, got ",
            out.desc());
      result = out.item();
      break;
    }
    int next = place_virtual_stage(stages, vs + 1).stage;
    if (next == me) {
      carried = out;
    } else {
      send_value(pipe, out, next);
    }
  }
  Tensor r = full({1}, result, DType::f64).to(pipe.device());
  pipe.broadcast(r, place_virtual_stage(stages, total - 1).stage);
  return r.item();
}

}  // namespace strata::dist::pipeline
