// The Communicator's blocking forms, the argument checks every implementation shares, and
// the message prefix that names rank, operation and step in errors.
#include "distributed/communicator.h"

namespace strata::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::avg:
      return "avg";
    case ReduceOp::max:
      return "max";
  }
  return "?";
}

std::string op_label(const char* op, const Tensor& t, const char* detail) {
  std::string label = str_cat(op, "(", t.defined() ? t.desc() : std::string("undefined"));
  if (detail) label += str_cat(", ", detail);
  return label + ")";
}

std::string Communicator::describe(const std::string& op) const {
  return str_cat("[dist] rank ", rank_name(rank()), " of ",
                 rank_names_.empty() ? size() : named_size_, " (", backend(), "): ", op,
                 " at step ", step());
}

void Communicator::set_rank_names(std::vector<int> names, int group_size) {
  check(static_cast<int>(names.size()) == size(), "[dist] set_rank_names: ", names.size(),
        " names for a communicator of ", size(), " ranks; give one name per rank");
  rank_names_ = std::move(names);
  named_size_ = group_size;
}

int Communicator::rank_name(int rank) const {
  return rank_names_.empty() || rank < 0 || rank >= static_cast<int>(rank_names_.size())
             ? rank
             : rank_names_[rank];
}

void check_comm_tensor(const char* op, const Tensor& t, const char* what) {
  check(t.defined(), "[", op, "] ", what, " is an undefined tensor");
  check(t.is_contiguous(), "[", op, "] ", what, " ", t.desc(),
        " is not contiguous; pass t.contiguous() and copy the result back");
}

void check_reducible(const char* op, const Tensor& t, ReduceOp reduce) {
  DType d = t.dtype();
  bool ok = d == DType::f32 || d == DType::f64 || d == DType::i32 || d == DType::i64;
  check(ok, "[", op, "] cannot reduce ", t.desc(),
        ": supported dtypes are f32, f64, i32 and i64; convert with t.to(DType::f32)");
  check(reduce != ReduceOp::avg || is_floating(d), "[", op, "] avg needs a floating tensor, got ",
        t.desc(), "; use sum and divide");
}

namespace {
class CompletedWork final : public Work {
 public:
  void wait(Timeout) override {}
  bool test() override { return true; }
};
}  // namespace

WorkPtr completed_work() { return std::make_unique<CompletedWork>(); }

void Communicator::all_reduce(Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(timeout()); }
void Communicator::all_gather(const Tensor& in, Tensor& out) {
  all_gather_async(in, out)->wait(timeout());
}
void Communicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  reduce_scatter_async(in, out, op)->wait(timeout());
}
void Communicator::broadcast(Tensor& t, int root) { broadcast_async(t, root)->wait(timeout()); }
void Communicator::send(const Tensor& t, int peer, int tag) {
  send_async(t, peer, tag)->wait(timeout());
}
void Communicator::recv(Tensor& t, int peer, int tag) { recv_async(t, peer, tag)->wait(timeout()); }
void Communicator::barrier() { barrier_async()->wait(timeout()); }

}  // namespace strata::dist
