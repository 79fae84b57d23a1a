// Communicator: the seam between training code and a collective library (DESIGN §3).
// Single-process, thread, MPI and NCCL implementations share this interface, so training
// code never branches on "are we distributed".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata::dist {

enum class ReduceOp { sum, avg, max };

const char* reduce_op_name(ReduceOp op);

using Timeout = std::chrono::milliseconds;

/// A collective or point-to-point operation in flight. Its tensors must not be touched
/// until wait() returns.
class Work {
 public:
  virtual ~Work() = default;
  /// Blocks until the operation is complete, or throws strata::Error naming the rank, the
  /// operation and the step once `timeout` has passed. A timed-out Work may be waited again.
  virtual void wait(Timeout timeout) = 0;
  /// Advances the operation without blocking; true once it is complete (results written).
  virtual bool test() = 0;
};
using WorkPtr = std::unique_ptr<Work>;

/// A group of ranks. Every rank calls collectives in the same order; tensors are contiguous.
/// Outputs are written in place. Asynchronous calls return a Work that must be waited.
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "single", "threads", "mpi" or "nccl".
  virtual const char* backend() const = 0;
  /// Where this communicator's tensors live: the host, or the GPU of an NCCL communicator.
  virtual Device device() const { return Device::cpu(); }
  /// Collective: ranks with the same `color` form a new communicator, ordered by `key`
  /// (ties by rank).
  virtual std::shared_ptr<Communicator> split(int color, int key) = 0;

  /// t = op over ranks of t. avg is sum / size (floating dtypes only).
  virtual WorkPtr all_reduce_async(Tensor& t, ReduceOp op) = 0;
  /// out (size * in.numel() elements) = the ranks' `in`, concatenated in rank order.
  virtual WorkPtr all_gather_async(const Tensor& in, Tensor& out) = 0;
  /// out (in.numel() / size elements) = this rank's chunk of op over ranks of `in`.
  virtual WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) = 0;
  /// t = root's t.
  virtual WorkPtr broadcast_async(Tensor& t, int root) = 0;
  virtual WorkPtr send_async(const Tensor& t, int peer, int tag) = 0;
  /// t = the tensor `peer` sent with `tag` (same dtype and element count).
  virtual WorkPtr recv_async(Tensor& t, int peer, int tag) = 0;
  virtual WorkPtr barrier_async() = 0;

  // Blocking forms: the asynchronous call, waited with timeout().
  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum);
  void all_gather(const Tensor& in, Tensor& out);
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::sum);
  void broadcast(Tensor& t, int root = 0);
  void send(const Tensor& t, int peer, int tag = 0);
  void recv(Tensor& t, int peer, int tag = 0);
  void barrier();

  /// How long blocking calls wait before raising an error (default 5 minutes).
  Timeout timeout() const { return Timeout(timeout_ms_.load()); }
  void set_timeout(Timeout timeout) { timeout_ms_.store(timeout.count()); }
  /// The training step named in timeout errors; the trainer sets it each step.
  int64_t step() const { return step_.load(); }
  void set_step(int64_t step) { step_.store(step); }
  /// Errors name rank r as names[r] of `group_size` instead of r of size(): a communicator
  /// split off a larger group (a pipeline link) then speaks in that group's ranks.
  void set_rank_names(std::vector<int> names, int group_size);

 protected:
  /// "[dist] rank 1 of 4 (mpi): all_reduce(f32[10], sum) at step 7": prefix for errors.
  std::string describe(const std::string& op) const;
  /// How errors name `rank` (itself unless set_rank_names gave names).
  int rank_name(int rank) const;

 private:
  std::vector<int> rank_names_;
  int named_size_ = 0;
  std::atomic<int64_t> timeout_ms_{300000};
  std::atomic<int64_t> step_{0};
};

/// A Work that is already complete (for operations that finish at launch).
WorkPtr completed_work();

/// The size-1 communicator: every collective is the identity (avg and max included).
std::shared_ptr<Communicator> make_single_communicator();

/// "all_reduce(f32[10], sum)": how ops describe themselves in errors.
std::string op_label(const char* op, const Tensor& t, const char* detail = nullptr);

/// Checks what every collective needs of a tensor: defined, contiguous. `op` names the call.
void check_comm_tensor(const char* op, const Tensor& t, const char* what);
/// Checks that a reduction of this dtype is supported (f32, f64, i32, i64; avg: floating).
void check_reducible(const char* op, const Tensor& t, ReduceOp reduce);

}  // namespace strata::dist
