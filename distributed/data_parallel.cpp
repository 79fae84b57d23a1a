// DataParallel: each bucket is one flat buffer (gradients, then one "had a gradient" flag per
// parameter); a parameter's grad-ready hook copies its gradient in, and a full bucket is
// all-reduced (avg) at once, in bucket order so that every rank launches the same sequence.
#include "distributed/data_parallel.h"

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"

namespace strata::dist {

struct Slot {
  std::string name;
  Tensor param;
  size_t bucket = 0;
  int64_t offset = 0;  // in the bucket's flat buffer
  int64_t flag = 0;    // index of this parameter's "had a gradient" flag
  bool ready = false;
};

struct Bucket {
  Tensor flat;  // (gradient elements + one flag per slot), f32 for bf16/f16 parameters
  std::vector<size_t> slots;
  size_t pending = 0;
  WorkPtr work;  // set once launched
  Timeline::Clock::time_point launched;
  bool recorded = false;  // its span is in the timeline
};

struct DataParallelState {
  std::shared_ptr<Communicator> comm;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  bool sync = true;
  bool solo = false;  // one rank, skip_single_rank: gradients stay where they are
  std::shared_ptr<Timeline> timeline;

  void on_grad_ready(size_t index);
  void launch_in_order();
  void poll();
  void reset();
  void record_done(size_t bucket);
};

namespace {

DType bucket_dtype(DType param) { return param == DType::f64 ? DType::f64 : DType::f32; }

/// Groups trainable parameters, last registered first, into buckets of one dtype.
void build_buckets(DataParallelState& s, const nn::NamedTensors& params,
                   const DataParallelOptions& options) {
  std::vector<std::vector<size_t>> groups;
  int64_t bytes = 0;  // in the open (last) group
  DType dtype = DType::f32;
  for (size_t i = params.size(); i-- > 0;) {
    const auto& [name, p] = params[i];
    if (!p.requires_grad()) continue;
    DType d = bucket_dtype(p.dtype());
    int64_t size = p.numel() * dtype_size(d);
    int64_t cap = groups.size() <= 1 ? options.first_bucket_bytes : options.bucket_bytes;
    // A parameter larger than the cap gets a bucket of its own.
    if (groups.empty() || d != dtype || (bytes + size > cap && !groups.back().empty())) {
      groups.emplace_back();
      bytes = 0;
      dtype = d;
    }
    s.slots.push_back({name, p});
    groups.back().push_back(s.slots.size() - 1);
    bytes += size;
  }
  for (auto& group : groups) {
    Bucket b;
    int64_t numel = 0;
    for (size_t i : group) {
      s.slots[i].bucket = s.buckets.size();
      s.slots[i].offset = numel;
      numel += s.slots[i].param.numel();
    }
    for (size_t j = 0; j < group.size(); ++j) s.slots[group[j]].flag = numel + j;
    // On the parameters' device: NCCL all-reduces CUDA buckets in place.
    b.flat = zeros({numel + static_cast<int64_t>(group.size())},
                   bucket_dtype(s.slots[group[0]].param.dtype()), s.slots[group[0]].param.device());
    b.slots = group;
    b.pending = group.size();
    s.buckets.push_back(std::move(b));
  }
}

/// Writes `grad` (or zeros when undefined) into the slot's place in its bucket.
void fill_slot(DataParallelState& s, Slot& slot, const Tensor& grad) {
  Bucket& b = s.buckets[slot.bucket];
  Tensor dst = b.flat.slice(0, slot.offset, slot.offset + slot.param.numel());
  Tensor flag = b.flat.slice(0, slot.flag, slot.flag + 1);
  if (grad.defined()) {
    check(grad.numel() == slot.param.numel(), "[DataParallel] gradient of ", slot.name, " is ",
          grad.desc(), " for a parameter ", slot.param.desc());
    copy_(dst, grad.reshape({grad.numel()}));
    fill_(flag, 1.0);
  } else {
    fill_(dst, 0.0);
    fill_(flag, 0.0);
  }
  slot.ready = true;
  --b.pending;
}

}  // namespace

void DataParallelState::on_grad_ready(size_t index) {
  if (!sync) return;
  Slot& slot = slots[index];
  check(!slot.ready, "[DataParallel] ", slot.name,
        " got a second gradient before finish_gradients(); call finish_gradients() after "
        "each backward, or run the extra backward passes inside no_sync()");
  // One rank: its gradients are already the average; copying them through buckets would only
  // cost memory traffic (about two passes over every gradient per step).
  if (solo) {
    slot.ready = true;
    return;
  }
  NoGradGuard guard;
  fill_slot(*this, slot, slot.param.grad());
  launch_in_order();
  poll();
}

void DataParallelState::launch_in_order() {
  while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
    Bucket& b = buckets[next_launch++];
    b.launched = Timeline::Clock::now();
    b.work = comm->all_reduce_async(b.flat, ReduceOp::avg);
  }
}

void DataParallelState::poll() {
  // MPI progresses only inside MPI calls: testing the buckets in flight moves them along.
  for (size_t i = 0; i < next_launch; ++i) {
    if (buckets[i].work && buckets[i].work->test()) record_done(i);
  }
}

void DataParallelState::record_done(size_t i) {
  Bucket& b = buckets[i];
  if (!timeline || b.recorded) return;
  b.recorded = true;
  timeline->add(str_cat("all_reduce bucket ", i), "comm", b.launched, Timeline::Clock::now(),
                b.flat.numel() * dtype_size(b.flat.dtype()));
}

void DataParallelState::reset() {
  for (auto& slot : slots) slot.ready = false;
  for (auto& b : buckets) {
    b.pending = b.slots.size();
    b.work.reset();
    b.recorded = false;
  }
  next_launch = 0;
}

DataParallel::DataParallel(nn::Module& module, std::shared_ptr<Communicator> comm,
                           const DataParallelOptions& options)
    : module_(module), state_(std::make_shared<DataParallelState>()) {
  check(comm != nullptr, "[DataParallel] the communicator is null");
  check(options.bucket_bytes > 0 && options.first_bucket_bytes > 0,
        "[DataParallel] bucket sizes must be positive, got bucket_bytes ", options.bucket_bytes,
        " and first_bucket_bytes ", options.first_bucket_bytes);
  state_->comm = std::move(comm);
  state_->solo = options.skip_single_rank && state_->comm->size() == 1;
  build_buckets(*state_, module.named_parameters(), options);
  std::weak_ptr<DataParallelState> weak = state_;
  for (size_t i = 0; i < state_->slots.size(); ++i) {
    // The hook outlives this object inside the parameter; the weak pointer turns it off.
    state_->slots[i].param.register_grad_ready_hook([weak, i](Tensor&) {
      if (auto s = weak.lock()) s->on_grad_ready(i);
    });
  }
  if (options.broadcast_on_start) broadcast_state();
}

DataParallel::~DataParallel() = default;

void DataParallel::set_timeline(std::shared_ptr<Timeline> timeline) {
  state_->timeline = std::move(timeline);
}

Communicator& DataParallel::comm() const { return *state_->comm; }

namespace {
void broadcast_all(Communicator& comm, const nn::NamedTensors& tensors) {
  NoGradGuard guard;
  for (const auto& [name, t] : tensors) {
    Tensor target = t;
    if (target.is_contiguous()) {
      comm.broadcast(target, 0);
    } else {
      Tensor tmp = target.contiguous();
      comm.broadcast(tmp, 0);
      copy_(target, tmp);
    }
  }
}
}  // namespace

void DataParallel::broadcast_state() {
  broadcast_all(*state_->comm, module_.named_parameters());
  broadcast_buffers();
}

void DataParallel::broadcast_buffers() { broadcast_all(*state_->comm, module_.named_buffers()); }

void DataParallel::finish_gradients() {
  DataParallelState& s = *state_;
  if (!s.sync) return;
  if (s.solo) return s.reset();
  NoGradGuard guard;
  // Parameters whose hook did not fire: an accumulated .grad from earlier micro-steps, or
  // none at all (zeros with flag 0), so that every rank launches every bucket.
  for (auto& slot : s.slots) {
    if (!slot.ready) fill_slot(s, slot, slot.param.grad());
  }
  s.launch_in_order();
  {
    Timeline::Scope waiting(s.timeline.get(), "finish_gradients wait", "wait");
    for (size_t i = 0; i < s.buckets.size(); ++i) {
      s.buckets[i].work->wait(s.comm->timeout());
      s.record_done(i);
    }
  }
  // Each bucket's flags (its last elements) come to the host in one copy: on a GPU, a read per
  // parameter would be a synchronisation per parameter.
  std::vector<std::vector<double>> flags;
  for (const Bucket& b : s.buckets) {
    const int64_t n = b.flat.numel(), first = n - static_cast<int64_t>(b.slots.size());
    flags.push_back(b.flat.slice(0, first, n).to_vector<double>());
  }
  for (auto& slot : s.slots) {
    Bucket& b = s.buckets[slot.bucket];
    const int64_t first = b.flat.numel() - static_cast<int64_t>(b.slots.size());
    if (flags[slot.bucket][slot.flag - first] == 0) {
      slot.param.zero_grad();  // no rank had a gradient
      continue;
    }
    Tensor avg =
        b.flat.slice(0, slot.offset, slot.offset + slot.param.numel()).reshape(slot.param.shape());
    Tensor grad = avg.dtype() == slot.param.dtype() ? avg.clone() : avg.to(slot.param.dtype());
    slot.param.set_grad(grad);
  }
  s.reset();
}

DataParallel::NoSync::NoSync(DataParallelState& state) : state_(state), previous_(state.sync) {
  state_.sync = false;
}
DataParallel::NoSync::~NoSync() { state_.sync = previous_; }

DataParallel::NoSync DataParallel::no_sync() { return NoSync(*state_); }

std::vector<std::vector<std::string>> DataParallel::bucket_layout() const {
  std::vector<std::vector<std::string>> layout;
  for (const auto& b : state_->buckets) {
    layout.emplace_back();
    for (size_t i : b.slots) layout.back().push_back(state_->slots[i].name);
  }
  return layout;
}

}  // namespace strata::dist
