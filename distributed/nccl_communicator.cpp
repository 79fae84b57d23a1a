// NCCL collectives on a dedicated stream per communicator. Launches make that stream wait for
// the compute stream on the device (an event; the host goes on); each Work records an event and
// its wait polls the event and NCCL's asynchronous error until the timeout, so a dead peer ends
// in an error, not a hang.
#include "distributed/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <mutex>
#include <thread>

#include "core/backend/backend.h"
#include "core/backend/cuda/context.h"
#include "core/backend/cuda/cuda_check.h"

#define STRATA_NCCL_CHECK(call)                                                                    \
  do {                                                                                             \
    ncclResult_t strata_nccl_ = (call);                                                            \
    if (strata_nccl_ != ncclSuccess) {                                                             \
      throw ::strata::Error(::strata::str_cat("[nccl] ", #call,                                    \
                                              " failed: ", ncclGetErrorString(strata_nccl_), " (", \
                                              static_cast<int>(strata_nccl_), ")"));               \
    }                                                                                              \
  } while (0)

namespace strata::dist {
namespace {

/// Owns an ncclComm_t; aborts instead of destroying when an operation failed or timed out
/// (ncclCommDestroy would wait for the stuck kernels).
class NcclComm {
 public:
  explicit NcclComm(ncclComm_t comm) : comm_(comm) {}
  ~NcclComm() {
    if (!comm_) return;
    if (failed_) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  ncclComm_t get() const { return comm_; }
  void mark_failed() { failed_ = true; }

 private:
  ncclComm_t comm_;
  bool failed_ = false;
};

class CudaStream {
 public:
  CudaStream() { STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~CudaStream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaEvent {
 public:
  CudaEvent() { STRATA_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~CudaEvent() {
    if (event_) cudaEventDestroy(event_);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

struct NcclShared {
  int device = 0;
  // Buffers of Works dropped before they completed: NCCL may still read or write them, so they
  // are freed only after the communicator is aborted (declared before comm: destroyed after).
  std::mutex abandoned_mu;
  std::vector<Tensor> abandoned;
  std::unique_ptr<NcclComm> comm;
  CudaStream stream;
  CudaEvent inputs_ready;  // recorded on the compute stream, waited by `stream`
};

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
    default:
      check_internal(false, "nccl_type: unchecked dtype ", d);
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::avg:
      return ncclAvg;
    case ReduceOp::max:
      return ncclMax;
  }
  return ncclSum;
}

size_t nbytes(const Tensor& t) { return static_cast<size_t>(t.numel() * dtype_size(t.dtype())); }

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclShared> shared, std::string label, std::vector<Tensor> buffers)
      : shared_(std::move(shared)), label_(std::move(label)), buffers_(std::move(buffers)) {
    STRATA_CUDA_CHECK(cudaEventRecord(event_.get(), shared_->stream.get()));
  }
  ~NcclWork() override {
    if (done_ || cudaEventQuery(event_.get()) == cudaSuccess) return;
    cudaGetLastError();  // clear cudaErrorNotReady
    // Dropped while NCCL may still run (an error elsewhere unwound the caller): ncclCommDestroy
    // would wait for it forever, and freeing the buffers now would hand them to new tensors.
    shared_->comm->mark_failed();
    std::lock_guard<std::mutex> lock(shared_->abandoned_mu);
    for (auto& b : buffers_) shared_->abandoned.push_back(std::move(b));
  }
  void wait(Timeout timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!test()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        shared_->comm->mark_failed();
        throw Error(str_cat(label_, " timed out after ", timeout.count(),
                            " ms (a peer died, is stuck, or called collectives in a different "
                            "order)"));
      }
      std::this_thread::yield();
    }
  }
  bool test() override {
    if (done_) return true;
    cudaError_t status = cudaEventQuery(event_.get());
    if (status == cudaSuccess) {
      done_ = true;
      return true;
    }
    check(status == cudaErrorNotReady, label_,
          ": cudaEventQuery failed: ", cudaGetErrorString(status));
    cudaGetLastError();  // not-ready is no error: keep it from the next launch check
    ncclResult_t async = ncclSuccess;
    STRATA_NCCL_CHECK(ncclCommGetAsyncError(shared_->comm->get(), &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      shared_->comm->mark_failed();
      throw Error(str_cat(label_, " failed in NCCL: ", ncclGetErrorString(async)));
    }
    return false;
  }

 private:
  std::shared_ptr<NcclShared> shared_;
  std::string label_;
  std::vector<Tensor> buffers_;  // kept alive until the kernels are done
  CudaEvent event_;
  bool done_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<NcclShared> shared, int rank, int size)
      : shared_(std::move(shared)), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(shared_->device); }

  std::shared_ptr<Communicator> split(int color, int key) override {
    // ncclCommSplit blocks without a timeout: meet in a barrier that has one first (as MPI).
    barrier();
    STRATA_CUDA_CHECK(cudaSetDevice(shared_->device));
    ncclComm_t child = nullptr;
    STRATA_NCCL_CHECK(ncclCommSplit(shared_->comm->get(), color, key, &child, nullptr));
    auto shared = std::make_shared<NcclShared>();
    shared->device = shared_->device;
    shared->comm = std::make_unique<NcclComm>(child);
    int rank = 0, size = 0;
    STRATA_NCCL_CHECK(ncclCommUserRank(child, &rank));
    STRATA_NCCL_CHECK(ncclCommCount(child, &size));
    auto result = std::make_shared<NcclCommunicator>(shared, rank, size);
    result->set_timeout(timeout());
    return result;
  }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    check_device("all_reduce", t, "tensor");
    check_reducible("all_reduce", t, op);
    before_launch();
    STRATA_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), t.numel(), nccl_type(t.dtype()),
                                    nccl_op(op), comm(), stream()));
    return work(op_label("all_reduce", t, reduce_op_name(op)), {t});
  }

  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    check_device("all_gather", in, "input");
    check_device("all_gather", out, "output");
    check(out.dtype() == in.dtype() && out.numel() == in.numel() * size_, "[all_gather] output ",
          out.desc(), " must hold size (", size_, ") x input ", in.desc(), " elements");
    before_launch();
    STRATA_NCCL_CHECK(
        ncclAllGather(in.raw_data(), out.raw_data(), nbytes(in), ncclUint8, comm(), stream()));
    return work(op_label("all_gather", in), {in, out});
  }

  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    check_device("reduce_scatter", in, "input");
    check_device("reduce_scatter", out, "output");
    check_reducible("reduce_scatter", in, op);
    check(out.dtype() == in.dtype() && out.numel() * size_ == in.numel(), "[reduce_scatter] input ",
          in.desc(), " must hold size (", size_, ") x output ", out.desc(), " elements");
    before_launch();
    STRATA_NCCL_CHECK(ncclReduceScatter(in.raw_data(), out.raw_data(), out.numel(),
                                        nccl_type(in.dtype()), nccl_op(op), comm(), stream()));
    return work(op_label("reduce_scatter", in, reduce_op_name(op)), {in, out});
  }

  WorkPtr broadcast_async(Tensor& t, int root) override {
    check_device("broadcast", t, "tensor");
    check_rank("broadcast", root);
    before_launch();
    STRATA_NCCL_CHECK(
        ncclBroadcast(t.raw_data(), t.raw_data(), nbytes(t), ncclUint8, root, comm(), stream()));
    return work(op_label("broadcast", t, str_cat("root ", root).c_str()), {t});
  }

  WorkPtr send_async(const Tensor& t, int peer, int tag) override {
    check_device("send", t, "tensor");
    check_rank("send", peer);
    // NCCL has no tags: a pair's messages match in the order they are posted. Callers post
    // them in the same order on both ends (the pipeline schedules do: test_pipeline_schedule).
    static_cast<void>(tag);
    before_launch();
    STRATA_NCCL_CHECK(ncclSend(t.raw_data(), nbytes(t), ncclUint8, peer, comm(), stream()));
    return work(op_label("send", t, str_cat("to ", rank_name(peer)).c_str()), {t});
  }

  WorkPtr recv_async(Tensor& t, int peer, int tag) override {
    check_device("recv", t, "tensor");
    check_rank("recv", peer);
    static_cast<void>(tag);  // matched by order, as in send_async
    before_launch();
    STRATA_NCCL_CHECK(ncclRecv(t.raw_data(), nbytes(t), ncclUint8, peer, comm(), stream()));
    return work(op_label("recv", t, str_cat("from ", rank_name(peer)).c_str()), {t});
  }

  WorkPtr barrier_async() override {
    Tensor token = zeros({1}, DType::f32, Device::cuda(shared_->device));
    before_launch();
    STRATA_NCCL_CHECK(ncclAllReduce(token.raw_data(), token.raw_data(), 1, ncclFloat32, ncclSum,
                                    comm(), stream()));
    return work("barrier()", {token});
  }

 private:
  ncclComm_t comm() const { return shared_->comm->get(); }
  cudaStream_t stream() const { return shared_->stream.get(); }
  /// The inputs were written on the compute stream: NCCL's stream waits for it on the device,
  /// and the host goes on queueing work.
  void before_launch() {
    cudaStream_t compute = cuda::stream_for(Device::cuda(shared_->device));  // sets the device
    STRATA_CUDA_CHECK(cudaEventRecord(shared_->inputs_ready.get(), compute));
    STRATA_CUDA_CHECK(cudaStreamWaitEvent(stream(), shared_->inputs_ready.get(), 0));
  }
  WorkPtr work(const std::string& op, std::vector<Tensor> buffers) {
    return std::make_unique<NcclWork>(shared_, describe(op), std::move(buffers));
  }
  void check_device(const char* op, const Tensor& t, const char* what) const {
    check_comm_tensor(op, t, what);
    check(t.device() == Device::cuda(shared_->device), "[", op,
          "] the NCCL communicator of cuda:", shared_->device, " moves tensors on that device; ",
          what, " is ", t.desc());
  }
  void check_rank(const char* op, int peer) const {
    check(peer >= 0 && peer < size_, "[", op, "] rank ", peer,
          " is out of range for a communicator of size ", size_);
  }

  std::shared_ptr<NcclShared> shared_;
  int rank_;
  int size_;
};

}  // namespace

bool nccl_available() { return true; }

std::shared_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  check(err == cudaSuccess && device >= 0 && device < count, "[nccl] cuda:", device,
        " is not available (",
        err == cudaSuccess ? str_cat(count, " GPUs visible") : std::string(cudaGetErrorString(err)),
        "); NCCL needs one GPU per rank");
  STRATA_CUDA_CHECK(cudaSetDevice(device));
  // The id travels as bytes over the host communicator.
  Tensor id_bytes = zeros({static_cast<int64_t>(sizeof(ncclUniqueId))}, DType::u8);
  ncclUniqueId id;
  if (bootstrap.rank() == 0) {
    STRATA_NCCL_CHECK(ncclGetUniqueId(&id));
    std::memcpy(id_bytes.raw_data(), &id, sizeof(id));
  }
  bootstrap.broadcast(id_bytes, 0);
  std::memcpy(&id, id_bytes.raw_data(), sizeof(id));
  // ncclCommInitRank blocks without a timeout: check that every rank got here first.
  bootstrap.barrier();
  auto shared = std::make_shared<NcclShared>();
  shared->device = device;
  ncclComm_t comm = nullptr;
  STRATA_NCCL_CHECK(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()));
  shared->comm = std::make_unique<NcclComm>(comm);
  auto result = std::make_shared<NcclCommunicator>(shared, bootstrap.rank(), bootstrap.size());
  result->set_timeout(bootstrap.timeout());
  return result;
}

}  // namespace strata::dist
