// Point-to-point transfer of activations and their gradients between pipeline stages, as
// autograd ops over the Communicator: backward through a receive sends the gradient back,
// and backward through a send receives it.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/pipeline/links.h"

namespace strata::dist::pipeline {

/// Asynchronous sends still in flight, with the tensors they read (kept alive until waited).
class PendingSends {
 public:
  void add(WorkPtr work, Tensor keep_alive);
  /// Waits for every send; throws the Communicator's timeout error naming the send.
  void wait_all(Timeout timeout);
  /// Drops the sends that have completed (without blocking), freeing their tensors early.
  void release_completed();
  size_t size() const { return works_.size(); }

 private:
  std::vector<std::pair<WorkPtr, Tensor>> works_;
};

/// The wire form of x's dtype and shape: an i64 header on `device`. More than 8 dimensions
/// is an Error starting with "[<op>]".
Tensor shape_header(const char* op, const Tensor& x, Device device);
/// A header to receive into, on `device`.
Tensor empty_shape_header(Device device);
/// An uninitialised tensor of the dtype and shape that a received `header` gives, on `device`;
/// a corrupt header is an Error naming `op` and where it came from (`from`).
Tensor tensor_for_header(const char* op, const Tensor& header, Device device,
                         const std::string& from);

struct SendState;
/// A sent activation. `token` (0-d) is the loss-like root of this stage's backward:
/// backward from it receives the gradient (unless recv_grad already did) and continues into
/// the graph that produced the activation.
struct SentActivation {
  Tensor token;
  std::shared_ptr<SendState> state;
};

/// Sends x (a shape header, then the data) to the neighbour over link.out without blocking;
/// its gradient will come back over link.in with `grad_tag`.
SentActivation send_activation(const PeerLink& link, const Tensor& x, int tag, int grad_tag,
                               const std::shared_ptr<PendingSends>& pending);
/// Receives the gradient of a sent activation now (blocking), for its backward to use.
void recv_grad(SentActivation& sent);

struct RecvState;
/// A received activation: `value` is a leaf-like tensor whose backward sends its gradient
/// to the peer that sent it.
struct ReceivedActivation {
  Tensor value;
  std::shared_ptr<RecvState> state;
};

/// Receives an activation sent by send_activation over link.in (blocking). With
/// requires_grad, backward through `value` sends its gradient back over link.out with
/// `grad_tag` (asynchronously).
ReceivedActivation recv_activation(const PeerLink& link, int tag, int grad_tag,
                                   const std::shared_ptr<PendingSends>& pending,
                                   bool requires_grad = true);
/// Sends zeros as the gradient when backward never reached `received` (an unused input), so
/// that the peer never waits; does nothing when the gradient was sent.
void finish_grad_send(ReceivedActivation& received);

}  // namespace strata::dist::pipeline
