// The MPI communicator: non-blocking MPI calls (MPI_Iallreduce, MPI_Ibcast, ...) whose
// requests are polled with MPI_Test until done or until the timeout raises an error.
#include "distributed/mpi_communicator.h"

#include <mpi.h>

#include <mutex>
#include <thread>
#include <vector>

namespace strata::dist {

/// Operations abandoned after a timeout: their buffers must outlive MPI, which may still
/// write into them, so they are kept here until the runtime ends.
struct MpiGraveyard {
  std::mutex mu;
  std::vector<Tensor> buffers;
  bool any() {
    std::lock_guard<std::mutex> lock(mu);
    return !buffers.empty();
  }
};

namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return str_cat("MPI error ", code);
  return std::string(text, len);
}

}  // namespace

#define STRATA_MPI_CHECK(call)                                                                 \
  do {                                                                                         \
    int strata_rc_ = (call);                                                                   \
    if (strata_rc_ != MPI_SUCCESS) {                                                           \
      throw ::strata::Error(::strata::str_cat(                                                 \
          "[mpi] ", #call, " failed: ", mpi_error_string(strata_rc_), " (", strata_rc_, ")")); \
    }                                                                                          \
  } while (0)

namespace {

/// Owns an MPI_Comm (freed on destruction unless MPI has already been finalised).
class MpiComm {
 public:
  explicit MpiComm(MPI_Comm comm) : comm_(comm) {}
  ~MpiComm() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
  }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_;
};

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    default:
      check_internal(false, "mpi_type: unchecked dtype ", d);
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }

int count_of(int64_t n, const char* op) {
  check(n <= INT32_MAX, "[", op, "] ", n, " elements exceed MPI's int count; split the tensor");
  return static_cast<int>(n);
}

int64_t nbytes(const Tensor& t) { return t.numel() * dtype_size(t.dtype()); }

template <class T>
void divide_typed(Tensor& t, int k) {
  T* p = t.data<T>();
  T d = static_cast<T>(k);
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] /= d;
}

/// avg is a sum divided by the size in the tensor's dtype (the reference loop does the same).
void divide(Tensor& t, int k) {
  if (t.dtype() == DType::f64) {
    divide_typed<double>(t, k);
  } else {
    divide_typed<float>(t, k);
  }
}

class MpiWork final : public Work {
 public:
  using OnDone = std::function<void(const MPI_Status&)>;
  MpiWork(std::string label, std::vector<Tensor> buffers, std::shared_ptr<MpiGraveyard> graveyard,
          OnDone on_done = {})
      : label_(std::move(label)),
        buffers_(std::move(buffers)),
        graveyard_(std::move(graveyard)),
        on_done_(std::move(on_done)) {}
  ~MpiWork() override {
    if (done_ || request_ == MPI_REQUEST_NULL) return;
    std::lock_guard<std::mutex> lock(graveyard_->mu);
    for (auto& b : buffers_) graveyard_->buffers.push_back(b);
  }
  MPI_Request* request() { return &request_; }

  void wait(Timeout timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!test()) {
      check(std::chrono::steady_clock::now() < deadline, label_, " timed out after ",
            timeout.count(),
            " ms (a peer died, is stuck, or called collectives in a different order)");
      std::this_thread::yield();
    }
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    MPI_Status status;
    int rc = MPI_Test(&request_, &flag, &status);
    check(rc == MPI_SUCCESS, label_, ": MPI_Test failed: ", mpi_error_string(rc));
    if (!flag) return false;
    done_ = true;
    if (on_done_) on_done_(status);
    return true;
  }

 private:
  std::string label_;
  std::vector<Tensor> buffers_;  // kept alive while MPI uses them
  std::shared_ptr<MpiGraveyard> graveyard_;
  OnDone on_done_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::shared_ptr<MpiGraveyard> graveyard)
      : comm_(comm), graveyard_(std::move(graveyard)) {
    STRATA_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    STRATA_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
    STRATA_MPI_CHECK(MPI_Comm_size(comm, &size_));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }

  std::shared_ptr<Communicator> split(int color, int key) override {
    // MPI_Comm_split blocks without a timeout: meet in a barrier that has one first.
    barrier();
    MPI_Comm child;
    STRATA_MPI_CHECK(MPI_Comm_split(comm_.get(), color, key, &child));
    auto result = std::make_shared<MpiCommunicator>(child, graveyard_);
    result->set_timeout(timeout());
    return result;
  }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    check_host("all_reduce", t, "tensor");
    check_reducible("all_reduce", t, op);
    int k = size_;
    auto work = make_work(op_label("all_reduce", t, reduce_op_name(op)), {t},
                          [t, op, k](const MPI_Status&) mutable {
                            if (op == ReduceOp::avg) divide(t, k);
                          });
    STRATA_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), count_of(t.numel(), "all_reduce"),
                                    mpi_type(t.dtype()), mpi_op(op), comm_.get(), work->request()));
    return work;
  }

  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    check_host("all_gather", in, "input");
    check_host("all_gather", out, "output");
    check(out.dtype() == in.dtype() && out.numel() == in.numel() * size_, "[all_gather] output ",
          out.desc(), " must hold size (", size_, ") x input ", in.desc(), " elements");
    auto work = make_work(op_label("all_gather", in), {in, out});
    int count = count_of(nbytes(in), "all_gather");
    STRATA_MPI_CHECK(MPI_Iallgather(in.raw_data(), count, MPI_BYTE, out.raw_data(), count, MPI_BYTE,
                                    comm_.get(), work->request()));
    return work;
  }

  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    check_host("reduce_scatter", in, "input");
    check_host("reduce_scatter", out, "output");
    check_reducible("reduce_scatter", in, op);
    check(out.dtype() == in.dtype() && out.numel() * size_ == in.numel(), "[reduce_scatter] input ",
          in.desc(), " must hold size (", size_, ") x output ", out.desc(), " elements");
    int k = size_;
    auto work = make_work(op_label("reduce_scatter", in, reduce_op_name(op)), {in, out},
                          [out, op, k](const MPI_Status&) mutable {
                            if (op == ReduceOp::avg) divide(out, k);
                          });
    STRATA_MPI_CHECK(MPI_Ireduce_scatter_block(
        in.raw_data(), out.raw_data(), count_of(out.numel(), "reduce_scatter"),
        mpi_type(in.dtype()), mpi_op(op), comm_.get(), work->request()));
    return work;
  }

  WorkPtr broadcast_async(Tensor& t, int root) override {
    check_host("broadcast", t, "tensor");
    check_rank("broadcast", root);
    auto work = make_work(op_label("broadcast", t, str_cat("root ", root).c_str()), {t});
    STRATA_MPI_CHECK(MPI_Ibcast(t.raw_data(), count_of(nbytes(t), "broadcast"), MPI_BYTE, root,
                                comm_.get(), work->request()));
    return work;
  }

  WorkPtr send_async(const Tensor& t, int peer, int tag) override {
    check_host("send", t, "tensor");
    check_rank("send", peer);
    auto work =
        make_work(op_label("send", t, str_cat("to ", rank_name(peer), ", tag ", tag).c_str()), {t});
    STRATA_MPI_CHECK(MPI_Isend(t.raw_data(), count_of(nbytes(t), "send"), MPI_BYTE, peer, tag,
                               comm_.get(), work->request()));
    return work;
  }

  WorkPtr recv_async(Tensor& t, int peer, int tag) override {
    check_host("recv", t, "tensor");
    check_rank("recv", peer);
    std::string label =
        describe(op_label("recv", t, str_cat("from ", rank_name(peer), ", tag ", tag).c_str()));
    int64_t want = nbytes(t);
    auto on_done = [label, want](const MPI_Status& status) {
      int got = 0;
      MPI_Get_count(&status, MPI_BYTE, &got);
      check(got == want, label, ": the message has ", got, " bytes, the tensor ", want,
            "; receive into a tensor of the sent dtype and size");
    };
    auto work = std::make_unique<MpiWork>(label, std::vector<Tensor>{t}, graveyard_, on_done);
    STRATA_MPI_CHECK(MPI_Irecv(t.raw_data(), count_of(want, "recv"), MPI_BYTE, peer, tag,
                               comm_.get(), work->request()));
    return work;
  }

  WorkPtr barrier_async() override {
    auto work = make_work("barrier()", {});
    STRATA_MPI_CHECK(MPI_Ibarrier(comm_.get(), work->request()));
    return work;
  }

 private:
  std::unique_ptr<MpiWork> make_work(const std::string& op, std::vector<Tensor> buffers,
                                     MpiWork::OnDone on_done = {}) {
    return std::make_unique<MpiWork>(describe(op), std::move(buffers), graveyard_,
                                     std::move(on_done));
  }
  void check_host(const char* op, const Tensor& t, const char* what) const {
    check_comm_tensor(op, t, what);
    check(t.device().is_cpu(), "[", op, "] the MPI communicator moves host tensors; ", what, " is ",
          t.desc(), "; use the NCCL communicator for CUDA tensors");
  }
  void check_rank(const char* op, int peer) const {
    check(peer >= 0 && peer < size_, "[", op, "] rank ", peer,
          " is out of range for a communicator of size ", size_);
  }

  MpiComm comm_;
  std::shared_ptr<MpiGraveyard> graveyard_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

MpiRuntime::MpiRuntime(int* argc, char*** argv) : graveyard_(std::make_shared<MpiGraveyard>()) {
  int initialized = 0;
  STRATA_MPI_CHECK(MPI_Initialized(&initialized));
  if (initialized) return;
  int provided = 0;
  STRATA_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
  owns_ = true;
  check(provided >= MPI_THREAD_SERIALIZED, "[mpi] MPI_Init_thread provided thread level ", provided,
        " but strata needs MPI_THREAD_SERIALIZED; use an MPI built with thread support");
}

MpiRuntime::~MpiRuntime() {
  // With abandoned operations MPI_Finalize would wait for a peer that is gone: skip it, and
  // the launcher ends the job when this process exits.
  if (owns_ && !graveyard_->any()) MPI_Finalize();
}

std::shared_ptr<Communicator> MpiRuntime::world() const {
  MPI_Comm comm;
  STRATA_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  return std::make_shared<MpiCommunicator>(comm, graveyard_);
}

}  // namespace strata::dist
