// Activation and gradient transfer between stages over their directed links: a shape header
// lets the receiver allocate the activation; gradients need none (each side knows the
// activation's shape). Buffers live on the link's device (the GPU under NCCL).
#include "distributed/pipeline/p2p.h"

#include "core/autograd/node.h"
#include "core/error.h"

namespace strata::dist::pipeline {
namespace {

constexpr int64_t kMaxDims = 8;
constexpr int64_t kHeaderLen = 2 + kMaxDims;  // dtype, ndim, dims

// Each logical message uses two wire tags: the header's and the data's.
int header_tag(int tag) { return tag * 2; }
int data_tag(int tag) { return tag * 2 + 1; }

}  // namespace

Tensor shape_header(const char* op, const Tensor& x, Device device) {
  check(x.dim() <= kMaxDims, "[", op, "] activation ", x.desc(), " has ", x.dim(),
        " dimensions; at most ", kMaxDims, " are supported");
  std::vector<int64_t> header(kHeaderLen, 0);
  header[0] = static_cast<int64_t>(x.dtype());
  header[1] = x.dim();
  for (int64_t d = 0; d < x.dim(); ++d) header[2 + d] = x.size(d);
  return from_vector(header, {kHeaderLen}, device);
}

Tensor empty_shape_header(Device device) { return empty({kHeaderLen}, DType::i64, device); }

Tensor tensor_for_header(const char* op, const Tensor& header, Device device,
                         const std::string& from) {
  std::vector<int64_t> h = header.to(Device::cpu()).to_vector<int64_t>();
  check(h.size() == static_cast<size_t>(kHeaderLen) && h[0] >= 0 &&
            h[0] <= static_cast<int64_t>(DType::b8) && h[1] >= 0 && h[1] <= kMaxDims,
        "[", op, "] the header from ", from,
        " is corrupt: the peer must send with the same pipeline code");
  return empty(Shape(h.begin() + 2, h.begin() + 2 + h[1]), static_cast<DType>(h[0]), device);
}

struct SendState {
  Link in;  // where the gradient comes back
  int grad_tag;
  Shape shape;
  DType dtype;
  Tensor grad;  // filled by recv_grad, or by the backward itself
};

struct RecvState {
  Link out;  // where the gradient goes back
  int grad_tag;
  std::shared_ptr<PendingSends> pending;
  Shape shape;
  DType dtype;
  bool grad_sent = false;
};

void PendingSends::add(WorkPtr work, Tensor keep_alive) {
  works_.emplace_back(std::move(work), std::move(keep_alive));
}

void PendingSends::wait_all(Timeout timeout) {
  for (auto& [work, tensor] : works_) work->wait(timeout);
  works_.clear();
}

void PendingSends::release_completed() {
  std::erase_if(works_, [](auto& entry) { return entry.first->test(); });
}

SentActivation send_activation(const PeerLink& link, const Tensor& x, int tag, int grad_tag,
                               const std::shared_ptr<PendingSends>& pending) {
  check(x.defined(), "[pipeline.send] the activation for tag ", tag, " is undefined");
  Communicator& comm = *link.out.comm;
  Tensor h = shape_header("pipeline.send", x, comm.device());
  Tensor data = x.detach().contiguous();
  pending->add(comm.send_async(h, link.out.peer, header_tag(tag)), h);
  pending->add(comm.send_async(data, link.out.peer, data_tag(tag)), data);

  auto state =
      std::make_shared<SendState>(SendState{link.in, grad_tag, x.shape(), x.dtype(), Tensor()});
  Tensor token = scalar_tensor(0, x.dtype(), x.device());
  // The token's gradient is ignored: the stage's backward starts here with the received
  // gradient of x.
  token = record("pipe_send", token, {x}, [state](const Tensor&) -> std::vector<Tensor> {
    if (!state->grad.defined()) {
      SentActivation tmp{Tensor(), state};
      recv_grad(tmp);
    }
    Tensor g = state->grad;
    state->grad = Tensor();
    return {g};
  });
  return {token, state};
}

void recv_grad(SentActivation& sent) {
  SendState& s = *sent.state;
  check(!s.grad.defined(), "[pipeline.recv_grad] the gradient from rank ", s.in.peer, " (tag ",
        s.grad_tag, ") was already received");
  Tensor g = empty(s.shape, s.dtype, s.in.comm->device());
  s.in.comm->recv(g, s.in.peer, data_tag(s.grad_tag));
  s.grad = g;
}

ReceivedActivation recv_activation(const PeerLink& link, int tag, int grad_tag,
                                   const std::shared_ptr<PendingSends>& pending,
                                   bool requires_grad) {
  Communicator& comm = *link.in.comm;
  Tensor h = empty_shape_header(comm.device());
  comm.recv(h, link.in.peer, header_tag(tag));
  Tensor value = tensor_for_header("pipeline.recv", h, comm.device(),
                                   str_cat("stage ", link.stage, " (tag ", tag, ")"));
  comm.recv(value, link.in.peer, data_tag(tag));
  const Shape shape = value.shape();
  const DType dtype = value.dtype();

  auto state = std::make_shared<RecvState>(RecvState{link.out, grad_tag, pending, shape, dtype});
  if (requires_grad) {
    // A leaf-like anchor gives the op an input that requires a gradient, so that backward
    // reaches this node; the anchor itself never receives one.
    Tensor anchor = scalar_tensor(0, dtype, comm.device()).set_requires_grad(true);
    value = record("pipe_recv", value, {anchor}, [state](const Tensor& g) {
      Tensor data = g.contiguous();
      Link& out = state->out;
      state->pending->add(out.comm->send_async(data, out.peer, data_tag(state->grad_tag)), data);
      state->grad_sent = true;
      return std::vector<Tensor>{Tensor()};
    });
  }
  return {value, state};
}

void finish_grad_send(ReceivedActivation& received) {
  RecvState& s = *received.state;
  if (s.grad_sent) return;
  Tensor zero = zeros(s.shape, s.dtype, s.out.comm->device());
  s.pending->add(s.out.comm->send_async(zero, s.out.peer, data_tag(s.grad_tag)), zero);
  s.grad_sent = true;
}

}  // namespace strata::dist::pipeline
