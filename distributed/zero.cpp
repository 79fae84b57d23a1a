// ZeroOptimizer: one flat gradient buffer and one flat parameter buffer (padded to a multiple
// of the group size); this rank's shard tensors are views into its chunk, so the wrapped
// optimizer updates the chunk in place and the chunk is what the all-gather sends.
#include "distributed/zero.h"

#include <algorithm>

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"
#include "distributed/grad_clip.h"

namespace strata::dist {

/// A run of one parameter's elements that falls in this rank's chunk.
struct Piece {
  size_t param = 0;         // index into ZeroLayout::params
  int64_t param_begin = 0;  // first element, in the flattened parameter
  int64_t chunk_begin = 0;  // first element, in this rank's chunk
  int64_t length = 0;
  Tensor shard;  // (length) view of ZeroLayout::chunk: the wrapped optimizer's parameter
};

struct ZeroLayout {
  std::vector<Tensor> params;  // every group's parameters, in order
  std::vector<size_t> group_of;
  std::vector<int64_t> offsets;  // of each parameter in the flat buffers
  int64_t chunk_numel = 0;       // elements per rank
  Tensor flat_grad;              // (chunk_numel * size): local gradients, then padding
  Tensor grad_chunk;             // (chunk_numel): the averaged gradients this rank owns
  Tensor flat_param;             // (chunk_numel * size): all-gather output
  Tensor chunk;                  // (chunk_numel): this rank's parameter values
  Tensor flags;                  // (params) i32: 1 where a rank had a gradient (max over ranks)
  std::vector<Piece> pieces;
};

namespace {

Tensor flat_view(const Tensor& buffer, int64_t begin, int64_t length) {
  return buffer.slice(0, begin, begin + length);
}

void check_params(const std::vector<optim::ParamGroup>& groups) {
  DType dtype = DType::f32;
  bool first = true;
  std::vector<const TensorImpl*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Tensor& p = groups[g].params[i];
      check(p.defined() && (p.dtype() == DType::f32 || p.dtype() == DType::f64) &&
                p.device().is_cpu(),
            "[ZeroOptimizer] parameter ", i, " of group ", g, " is ",
            p.defined() ? p.desc() : std::string("undefined"),
            "; ZeRO-1 shards f32 or f64 host parameters (keep bf16 master weights in f32)");
      check(first || p.dtype() == dtype, "[ZeroOptimizer] parameters mix ", dtype_name(dtype),
            " and ", dtype_name(p.dtype()), " (parameter ", i, " of group ", g,
            "); use one dtype, or one ZeroOptimizer per dtype");
      check(std::find(seen.begin(), seen.end(), &p.impl()) == seen.end(),
            "[ZeroOptimizer] parameter ", i, " of group ", g,
            " appears twice; pass each tensor once (tied weights are one parameter)");
      seen.push_back(&p.impl());
      dtype = p.dtype();
      first = false;
    }
  }
}

/// Lays the parameters end to end and cuts out this rank's chunk.
std::unique_ptr<ZeroLayout> make_layout(const std::vector<optim::ParamGroup>& groups, int rank,
                                        int size) {
  auto l = std::make_unique<ZeroLayout>();
  DType dtype = DType::f32;
  int64_t total = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const Tensor& p : groups[g].params) {
      l->params.push_back(p);
      l->group_of.push_back(g);
      l->offsets.push_back(total);
      total += p.numel();
      dtype = p.dtype();
    }
  }
  l->chunk_numel = std::max<int64_t>(1, (total + size - 1) / size);
  const int64_t padded = l->chunk_numel * size;
  l->flat_grad = zeros({padded}, dtype);
  l->grad_chunk = zeros({l->chunk_numel}, dtype);
  l->flat_param = zeros({padded}, dtype);
  l->chunk = zeros({l->chunk_numel}, dtype);
  l->flags = zeros({std::max<int64_t>(1, static_cast<int64_t>(l->params.size()))}, DType::i32);
  const int64_t lo = rank * l->chunk_numel, hi = lo + l->chunk_numel;
  for (size_t i = 0; i < l->params.size(); ++i) {
    int64_t begin = std::max(lo, l->offsets[i]);
    int64_t end = std::min(hi, l->offsets[i] + l->params[i].numel());
    if (begin >= end) continue;
    Piece piece{i, begin - l->offsets[i], begin - lo, end - begin, Tensor()};
    piece.shard = flat_view(l->chunk, piece.chunk_begin, piece.length);
    l->pieces.push_back(piece);
  }
  return l;
}

void broadcast_params(Communicator& comm, const std::vector<Tensor>& params) {
  NoGradGuard guard;
  for (Tensor p : params) {
    Tensor tmp = p.contiguous();
    comm.broadcast(tmp, 0);
    if (!tmp.same(p)) copy_(p, tmp);
  }
}

}  // namespace

ZeroOptimizer::ZeroOptimizer(std::vector<optim::ParamGroup> groups,
                             std::shared_ptr<Communicator> comm, const OptimizerFactory& make,
                             const ZeroOptions& options)
    : comm_(std::move(comm)) {
  check(comm_ != nullptr, "[ZeroOptimizer] the communicator is null");
  check(static_cast<bool>(make), "[ZeroOptimizer] the optimizer factory is empty");
  check_params(groups);
  layout_ = make_layout(groups, comm_->rank(), comm_->size());
  if (options.broadcast_on_start) broadcast_params(*comm_, layout_->params);
  std::vector<optim::ParamGroup> shards(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    shards[g].lr = groups[g].lr;
    shards[g].weight_decay = groups[g].weight_decay;
    shards[g].options = groups[g].options;
  }
  for (const Piece& piece : layout_->pieces) {
    shards[layout_->group_of[piece.param]].params.push_back(piece.shard);
  }
  inner_ = make(std::move(shards));
  check(inner_ != nullptr, "[ZeroOptimizer] the optimizer factory returned null");
  check(inner_->name() != "LARS", "[ZeroOptimizer] ", inner_->name(),
        " scales each parameter by its own norm, which a shard cannot see; use SGD, Adam, "
        "AdamW, RMSprop or Adagrad");
}

ZeroOptimizer::~ZeroOptimizer() = default;

void ZeroOptimizer::reduce_gradients() {
  ZeroLayout& l = *layout_;
  NoGradGuard guard;
  int32_t* flags = l.flags.data<int32_t>();
  for (size_t i = 0; i < l.params.size(); ++i) {
    const Tensor& p = l.params[i];
    Tensor dst = flat_view(l.flat_grad, l.offsets[i], p.numel());
    Tensor grad = p.grad();
    flags[i] = grad.defined() ? 1 : 0;
    if (grad.defined()) {
      check(grad.numel() == p.numel(), "[ZeroOptimizer] gradient ", grad.desc(), " of parameter ",
            i, " does not match ", p.desc());
      copy_(dst, grad.reshape({p.numel()}));
    } else {
      fill_(dst, 0.0);
    }
  }
  WorkPtr flag_work = comm_->all_reduce_async(l.flags, ReduceOp::max);
  WorkPtr grad_work = comm_->reduce_scatter_async(l.flat_grad, l.grad_chunk, ReduceOp::avg);
  flag_work->wait(comm_->timeout());
  grad_work->wait(comm_->timeout());
  for (Piece& piece : l.pieces) {
    if (flags[piece.param]) {
      piece.shard.set_grad(flat_view(l.grad_chunk, piece.chunk_begin, piece.length));
    } else {
      piece.shard.zero_grad();  // no rank had a gradient: the update skips it
    }
  }
  reduced_ = true;
}

double ZeroOptimizer::clip_grad_norm_(double max_norm, double norm_type) {
  if (!reduced_) reduce_gradients();
  return dist::clip_grad_norm_(shard_parameters(), max_norm, norm_type, *comm_,
                               GradSharding::sharded);
}

void ZeroOptimizer::step() {
  if (!reduced_) reduce_gradients();
  {
    // The chunk is refreshed from the parameters, so loading a checkpoint into the model
    // between steps is seen here.
    NoGradGuard guard;
    for (Piece& piece : layout_->pieces) {
      const Tensor& p = layout_->params[piece.param];
      copy_(piece.shard, flat_view(p.reshape({p.numel()}), piece.param_begin, piece.length));
    }
  }
  inner_->step();
  gather_parameters();
  reduced_ = false;
}

void ZeroOptimizer::gather_parameters() {
  ZeroLayout& l = *layout_;
  comm_->all_gather(l.chunk, l.flat_param);
  NoGradGuard guard;
  for (size_t i = 0; i < l.params.size(); ++i) {
    Tensor p = l.params[i];
    copy_(p, flat_view(l.flat_param, l.offsets[i], p.numel()).reshape(p.shape()));
  }
}

void ZeroOptimizer::zero_grad() {
  for (Tensor& p : layout_->params) p.zero_grad();
  for (Piece& piece : layout_->pieces) piece.shard.zero_grad();
  reduced_ = false;
}

std::vector<Tensor> ZeroOptimizer::shard_parameters() const {
  std::vector<Tensor> out;
  for (const auto& group : inner_->groups()) {
    out.insert(out.end(), group.params.begin(), group.params.end());
  }
  return out;
}

int64_t ZeroOptimizer::shard_numel() const { return layout_->chunk_numel; }

}  // namespace strata::dist
