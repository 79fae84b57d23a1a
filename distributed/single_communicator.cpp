// The size-1 communicator, the default: every collective is the identity, so a
// single-process run pays nothing for the distributed code path.
#include <cstring>
#include <deque>
#include <map>

#include "core/backend/backend.h"
#include "distributed/communicator.h"

namespace strata::dist {
namespace {

/// dst's bytes = src's. A CUDA tensor is copied on its device's stream (the host cannot
/// dereference its pointers; stream order keeps the copy after the kernels that wrote src).
void copy_bytes(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel() * dtype_size(src.dtype());
  if (n == 0) return;
  check(src.device() == dst.device(), "[single] a message on ", src.device().str(),
        " cannot be received into a tensor on ", dst.device().str(),
        "; receive on the sender's device");
  if (dst.device().is_cpu()) {
    std::memcpy(dst.raw_data(), src.raw_data(), static_cast<size_t>(n));
  } else {
    backend_for(dst.device()).copy_on_device(dst.raw_data(), src.raw_data(), n, dst.device());
  }
}

/// Messages a rank sent to itself, by tag.
using Mailbox = std::map<int, std::deque<Tensor>>;

/// A receive from self: complete once the matching send has been posted. Waiting for one
/// that was never sent is an error at once, since no other thread could send it.
class SelfRecv final : public Work {
 public:
  SelfRecv(std::shared_ptr<Mailbox> mailbox, int tag, Tensor t, std::string label)
      : mailbox_(std::move(mailbox)), tag_(tag), t_(std::move(t)), label_(std::move(label)) {}
  void wait(Timeout) override {
    check(test(), label_, ": nothing was sent to this rank with tag ", tag_,
          "; send before receiving");
  }
  bool test() override {
    if (done_) return true;
    auto it = mailbox_->find(tag_);
    if (it == mailbox_->end() || it->second.empty()) return false;
    Tensor msg = it->second.front();
    it->second.pop_front();
    check(msg.dtype() == t_.dtype() && msg.numel() == t_.numel(), label_, ": the message is ",
          msg.desc(), "; receive into a tensor of that dtype and size");
    copy_bytes(msg, t_);
    done_ = true;
    return true;
  }

 private:
  std::shared_ptr<Mailbox> mailbox_;
  int tag_;
  Tensor t_;
  std::string label_;
  bool done_ = false;
};

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend() const override { return "single"; }
  std::shared_ptr<Communicator> split(int, int) override {
    auto child = std::make_shared<SingleCommunicator>();
    child->set_timeout(timeout());
    return child;
  }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    check_comm_tensor("all_reduce", t, "tensor");
    check_reducible("all_reduce", t, op);
    return completed_work();
  }
  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    check_same_sized("all_gather", in, out);
    copy_bytes(in, out);
    return completed_work();
  }
  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    check_same_sized("reduce_scatter", in, out);
    check_reducible("reduce_scatter", in, op);
    copy_bytes(in, out);
    return completed_work();
  }
  WorkPtr broadcast_async(Tensor& t, int root) override {
    check_comm_tensor("broadcast", t, "tensor");
    check_peer("broadcast", root);
    return completed_work();
  }
  WorkPtr send_async(const Tensor& t, int peer, int tag) override {
    check_comm_tensor("send", t, "tensor");
    check_peer("send", peer);
    (*mailbox_)[tag].push_back(t.clone());
    return completed_work();
  }
  WorkPtr recv_async(Tensor& t, int peer, int tag) override {
    check_comm_tensor("recv", t, "tensor");
    check_peer("recv", peer);
    return std::make_unique<SelfRecv>(mailbox_, tag, t, describe(op_label("recv", t)));
  }
  WorkPtr barrier_async() override { return completed_work(); }

 private:
  void check_same_sized(const char* op, const Tensor& in, const Tensor& out) const {
    check_comm_tensor(op, in, "input");
    check_comm_tensor(op, out, "output");
    check(in.dtype() == out.dtype() && in.numel() == out.numel() && in.device() == out.device(),
          "[", op, "] with 1 rank the output must match the input: got input ", in.desc(),
          " and output ", out.desc());
  }
  void check_peer(const char* op, int peer) const {
    check(peer == 0, "[", op, "] rank ", peer, " is out of range for a communicator of size 1");
  }
  std::shared_ptr<Mailbox> mailbox_ = std::make_shared<Mailbox>();
};

}  // namespace

std::shared_ptr<Communicator> make_single_communicator() {
  return std::make_shared<SingleCommunicator>();
}

}  // namespace strata::dist
