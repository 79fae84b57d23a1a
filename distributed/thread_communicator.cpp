// Thread ranks: the n-th collective call of every rank meets in the n-th "round" of a shared
// group; the last rank to arrive computes the result, and each rank copies its part out
// when it waits. Inputs are snapshotted at launch, so callers may reuse them at once.
#include "distributed/thread_communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

namespace strata::dist {
namespace {

using Clock = std::chrono::steady_clock;
// How often waits look up from their condition to see whether another rank has failed.
constexpr auto kAbortPoll = std::chrono::milliseconds(20);

/// Shared by a world group and every group split from it: set when a rank thread fails.
struct AbortState {
  std::mutex mu;
  std::string reason;
};

struct Round {
  std::string op;              // the operation name of the first rank to arrive
  std::vector<Tensor> inputs;  // per rank, snapshots
  std::vector<int64_t> args;   // per rank (root, color, key ...)
  std::vector<int64_t> args2;
  std::vector<bool> present;
  int arrived = 0;
  bool complete = false;
  std::string error;                                  // ranks disagreed
  Tensor result;                                      // reduced / gathered / broadcast
  std::vector<std::shared_ptr<Communicator>> splits;  // per rank, for split
};

/// Point-to-point messages from one rank to another with one tag, matched in order.
struct Channel {
  int64_t sent = 0;
  int64_t received = 0;                // receives posted
  std::map<int64_t, Tensor> messages;  // by send number, until received
};

struct ThreadGroup {
  explicit ThreadGroup(int n, std::shared_ptr<AbortState> a) : size(n), abort_state(std::move(a)) {}
  int size;
  std::shared_ptr<AbortState> abort_state;
  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, std::shared_ptr<Round>> rounds;       // by sequence number
  std::map<std::tuple<int, int, int>, Channel> channels;  // by (src, dst, tag)
};

std::string abort_reason(AbortState& a) {
  std::lock_guard<std::mutex> lock(a.mu);
  return a.reason;
}

int64_t nbytes(const Tensor& t) { return t.numel() * dtype_size(t.dtype()); }

void copy_bytes(const Tensor& src, int64_t src_offset, Tensor& dst, int64_t count) {
  int64_t es = dtype_size(src.dtype());
  std::memcpy(dst.raw_data(), static_cast<const char*>(src.raw_data()) + src_offset * es,
              count * es);
}

template <class T>
void reduce_typed(const std::vector<Tensor>& inputs, ReduceOp op, Tensor& out) {
  T* acc = out.data<T>();
  int64_t n = out.numel();
  std::memcpy(acc, inputs[0].data<T>(), n * sizeof(T));
  for (size_t r = 1; r < inputs.size(); ++r) {  // rank order, like a reference loop
    const T* x = inputs[r].data<T>();
    if (op == ReduceOp::max) {
      for (int64_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
    }
  }
  if (op == ReduceOp::avg) {
    T k = static_cast<T>(inputs.size());
    for (int64_t i = 0; i < n; ++i) acc[i] /= k;
  }
}

Tensor reduce_all(const std::vector<Tensor>& inputs, ReduceOp op) {
  Tensor out = empty({inputs[0].numel()}, inputs[0].dtype());
  switch (out.dtype()) {
    case DType::f32:
      reduce_typed<float>(inputs, op, out);
      break;
    case DType::f64:
      reduce_typed<double>(inputs, op, out);
      break;
    case DType::i32:
      reduce_typed<int32_t>(inputs, op, out);
      break;
    case DType::i64:
      reduce_typed<int64_t>(inputs, op, out);
      break;
    default:
      check_internal(false, "reduce_all: unchecked dtype ", out.dtype());
  }
  return out;
}

/// "" when every rank passed the same dtype and element count, else who passed what.
std::string mismatch(const Round& round) {
  const Tensor& a = round.inputs[0];
  for (size_t r = 1; r < round.inputs.size(); ++r) {
    const Tensor& b = round.inputs[r];
    if (a.dtype() != b.dtype() || a.numel() != b.numel()) {
      return str_cat("rank 0 passed ", a.desc(), " but rank ", r, " passed ", b.desc(),
                     "; every rank must pass the same dtype and size");
    }
  }
  return "";
}

class ThreadWork final : public Work {
 public:
  using Ready = std::function<bool()>;    // called under the group lock
  using Deliver = std::function<void()>;  // called once, without the lock
  ThreadWork(std::shared_ptr<ThreadGroup> group, std::string label, Ready ready, Deliver deliver,
             std::function<std::string()> missing)
      : group_(std::move(group)),
        label_(std::move(label)),
        ready_(std::move(ready)),
        deliver_(std::move(deliver)),
        missing_(std::move(missing)) {}

  void wait(Timeout timeout) override {
    if (delivered_) return;
    auto deadline = Clock::now() + timeout;
    std::unique_lock<std::mutex> lock(group_->mu);
    while (!ready_()) {
      std::string reason = abort_reason(*group_->abort_state);
      check(reason.empty(), label_, " failed: ", reason);
      check(Clock::now() < deadline, label_, " timed out after ", timeout.count(),
            " ms waiting for ", missing_(),
            " (a peer died, is stuck, or called collectives in a different order)");
      group_->cv.wait_until(lock, std::min(deadline, Clock::now() + kAbortPoll));
    }
    lock.unlock();
    finish();
  }
  bool test() override {
    if (delivered_) return true;
    {
      std::lock_guard<std::mutex> lock(group_->mu);
      if (!ready_()) return false;
    }
    finish();
    return true;
  }

 private:
  void finish() {
    deliver_();
    delivered_ = true;
  }
  std::shared_ptr<ThreadGroup> group_;
  std::string label_;
  Ready ready_;
  Deliver deliver_;
  std::function<std::string()> missing_;
  bool delivered_ = false;
};

using Finish = std::function<void(Round&)>;

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size; }
  const char* backend() const override { return "threads"; }
  const std::shared_ptr<AbortState>& abort_state() const { return group_->abort_state; }

  std::shared_ptr<Communicator> split(int color, int key) override {
    auto round = post("split", {}, color, key, [this](Round& r) { make_splits(r); });
    std::string label = describe(str_cat("split(color ", color, ", key ", key, ")"));
    make_work(label, round, [](const Round&) {})->wait(timeout());
    auto child = round->splits.at(rank_);
    if (child) child->set_timeout(timeout());
    return child;
  }

  WorkPtr all_reduce_async(Tensor& t, ReduceOp op) override {
    check_host("all_reduce", t, "tensor");
    check_reducible("all_reduce", t, op);
    auto round = post("all_reduce", flat_clone(t), static_cast<int64_t>(op), 0, [op](Round& r) {
      r.error = mismatch(r);
      if (r.error.empty()) r.result = reduce_all(r.inputs, op);
    });
    return make_work(describe(op_label("all_reduce", t, reduce_op_name(op))), round,
                     [t](const Round& r) mutable { copy_bytes(r.result, 0, t, t.numel()); });
  }

  WorkPtr all_gather_async(const Tensor& in, Tensor& out) override {
    check_host("all_gather", in, "input");
    check_host("all_gather", out, "output");
    check(out.dtype() == in.dtype() && out.numel() == in.numel() * size(), "[all_gather] output ",
          out.desc(), " must hold size (", size(), ") x input ", in.desc(), " elements");
    auto round = post("all_gather", flat_clone(in), 0, 0, [](Round& r) {
      r.error = mismatch(r);
      if (!r.error.empty()) return;
      int64_t n = r.inputs[0].numel();
      r.result = empty({n * static_cast<int64_t>(r.inputs.size())}, r.inputs[0].dtype());
      for (size_t i = 0; i < r.inputs.size(); ++i) {
        std::memcpy(static_cast<char*>(r.result.raw_data()) + i * nbytes(r.inputs[i]),
                    r.inputs[i].raw_data(), nbytes(r.inputs[i]));
      }
    });
    return make_work(describe(op_label("all_gather", in)), round,
                     [out](const Round& r) mutable { copy_bytes(r.result, 0, out, out.numel()); });
  }

  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) override {
    check_host("reduce_scatter", in, "input");
    check_host("reduce_scatter", out, "output");
    check_reducible("reduce_scatter", in, op);
    check(out.dtype() == in.dtype() && out.numel() * size() == in.numel(),
          "[reduce_scatter] input ", in.desc(), " must hold size (", size(), ") x output ",
          out.desc(), " elements");
    auto round =
        post("reduce_scatter", flat_clone(in), static_cast<int64_t>(op), 0, [op](Round& r) {
          r.error = mismatch(r);
          if (r.error.empty()) r.result = reduce_all(r.inputs, op);
        });
    int64_t first = rank_ * out.numel();
    return make_work(
        describe(op_label("reduce_scatter", in, reduce_op_name(op))), round,
        [out, first](const Round& r) mutable { copy_bytes(r.result, first, out, out.numel()); });
  }

  WorkPtr broadcast_async(Tensor& t, int root) override {
    check_host("broadcast", t, "tensor");
    check_rank("broadcast", root);
    Tensor input = rank_ == root ? flat_clone(t) : t;  // only the root's data is read
    auto round = post("broadcast", input, root, 0, [](Round& r) {
      r.error = mismatch(r);
      for (size_t i = 0; i < r.args.size() && r.error.empty(); ++i) {
        if (r.args[i] != r.args[0]) {
          r.error =
              str_cat("rank 0 named root ", r.args[0], " but rank ", i, " named root ", r.args[i]);
        }
      }
      if (r.error.empty()) r.result = r.inputs[r.args[0]];
    });
    int me = rank_;
    return make_work(describe(op_label("broadcast", t, str_cat("root ", root).c_str())), round,
                     [t, me, root](const Round& r) mutable {
                       if (me != root) copy_bytes(r.result, 0, t, t.numel());
                     });
  }

  WorkPtr send_async(const Tensor& t, int peer, int tag) override {
    check_host("send", t, "tensor");
    check_rank("send", peer);
    Tensor msg = flat_clone(t);
    std::lock_guard<std::mutex> lock(group_->mu);
    Channel& ch = group_->channels[{rank_, peer, tag}];
    ch.messages[ch.sent++] = msg;
    group_->cv.notify_all();
    return completed_work();
  }

  WorkPtr recv_async(Tensor& t, int peer, int tag) override {
    check_host("recv", t, "tensor");
    check_rank("recv", peer);
    auto group = group_;
    std::tuple<int, int, int> key{peer, rank_, tag};
    int64_t ticket;
    {
      std::lock_guard<std::mutex> lock(group->mu);
      ticket = group->channels[key].received++;  // messages match receives in order
    }
    std::string label =
        describe(op_label("recv", t, str_cat("from ", rank_name(peer), ", tag ", tag).c_str()));
    auto ready = [group, key, ticket] { return group->channels[key].sent > ticket; };
    auto deliver = [group, key, ticket, t, label]() mutable {
      Tensor msg;
      {
        std::lock_guard<std::mutex> lock(group->mu);
        auto& messages = group->channels[key].messages;
        msg = messages.at(ticket);
        messages.erase(ticket);
      }
      check(msg.dtype() == t.dtype() && msg.numel() == t.numel(), label, ": the message is ",
            msg.desc(), "; receive into a tensor of that dtype and size");
      copy_bytes(msg, 0, t, t.numel());
    };
    auto missing = [peer] { return str_cat("a message from rank ", peer); };
    return std::make_unique<ThreadWork>(group_, label, ready, deliver, missing);
  }

  WorkPtr barrier_async() override {
    auto round = post("barrier", {}, 0, 0, [](Round&) {});
    return make_work(describe("barrier()"), round, [](const Round&) {});
  }

 private:
  /// Adds this rank's part to its next round; the last rank to arrive runs `finish`.
  std::shared_ptr<Round> post(const char* op, Tensor input, int64_t arg, int64_t arg2,
                              const Finish& finish) {
    int64_t seq = next_seq_++;
    std::lock_guard<std::mutex> lock(group_->mu);
    auto& slot = group_->rounds[seq];
    if (!slot) {
      slot = std::make_shared<Round>();
      slot->op = op;
      slot->inputs.resize(size());
      slot->args.resize(size());
      slot->args2.resize(size());
      slot->present.resize(size(), false);
    }
    std::shared_ptr<Round> round = slot;
    if (round->op != op && round->error.empty()) {
      round->error = str_cat("rank ", rank_, " called ", op, " where another rank called ",
                             round->op, "; every rank must call collectives in the same order");
    }
    round->inputs[rank_] = std::move(input);
    round->args[rank_] = arg;
    round->args2[rank_] = arg2;
    round->present[rank_] = true;
    if (++round->arrived == size()) {
      if (round->error.empty()) finish(*round);
      round->complete = true;
      group_->rounds.erase(seq);
      group_->cv.notify_all();
    }
    return round;
  }

  WorkPtr make_work(const std::string& label, std::shared_ptr<Round> round,
                    std::function<void(const Round&)> deliver) {
    auto ready = [round] { return round->complete; };
    auto done = [round, label, deliver] {
      check(round->error.empty(), label, ": ", round->error);
      deliver(*round);
    };
    auto missing = [round] {
      std::string ranks;
      for (size_t r = 0; r < round->present.size(); ++r) {
        if (!round->present[r]) ranks += str_cat(ranks.empty() ? "" : ", ", r);
      }
      return str_cat("rank(s) ", ranks);
    };
    return std::make_unique<ThreadWork>(group_, label, ready, done, missing);
  }

  /// Runs on the last rank to arrive: one new group per color, ranked by (key, rank).
  void make_splits(Round& r) {
    std::map<int64_t, std::vector<std::pair<int64_t, int>>> members;  // color -> (key, rank)
    for (int i = 0; i < size(); ++i) members[r.args[i]].push_back({r.args2[i], i});
    r.splits.resize(size());
    for (auto& [color, list] : members) {
      std::sort(list.begin(), list.end());
      auto group =
          std::make_shared<ThreadGroup>(static_cast<int>(list.size()), group_->abort_state);
      for (size_t j = 0; j < list.size(); ++j) {
        r.splits[list[j].second] = std::make_shared<ThreadCommunicator>(group, static_cast<int>(j));
      }
    }
  }

  void check_host(const char* op, const Tensor& t, const char* what) const {
    check_comm_tensor(op, t, what);
    check(t.device().is_cpu(), "[", op, "] the thread communicator moves host tensors; ", what,
          " is ", t.desc());
  }
  void check_rank(const char* op, int peer) const {
    check(peer >= 0 && peer < size(), "[", op, "] rank ", peer,
          " is out of range for a communicator of size ", size());
  }
  static Tensor flat_clone(const Tensor& t) { return t.clone().reshape({t.numel()}); }

  std::shared_ptr<ThreadGroup> group_;
  int rank_;
  int64_t next_seq_ = 0;
};

}  // namespace

std::vector<std::shared_ptr<Communicator>> make_thread_communicators(int size) {
  check(size >= 1, "[make_thread_communicators] size must be at least 1, got ", size);
  auto group = std::make_shared<ThreadGroup>(size, std::make_shared<AbortState>());
  std::vector<std::shared_ptr<Communicator>> comms;
  for (int r = 0; r < size; ++r) comms.push_back(std::make_shared<ThreadCommunicator>(group, r));
  return comms;
}

void run_thread_ranks(int size, const std::function<void(Communicator&)>& fn) {
  auto comms = make_thread_communicators(size);
  // The world group's abort state is the one every split group shares.
  auto abort = static_cast<ThreadCommunicator&>(*comms[0]).abort_state();
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(*comms[r]);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(abort->mu);
        if (abort->reason.empty()) {
          abort->reason = str_cat("rank ", r, " failed: ", e.what());
          first = std::current_exception();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace strata::dist
