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
  Device device = Device::cpu();
  bool first = true;
  std::vector<const TensorImpl*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Tensor& p = groups[g].params[i];
      check(p.defined() && (p.dtype() == DType::f32 || p.dtype() == DType::f64),
            "[ZeroOptimizer] parameter ", i, " of group ", g, " is ",
            p.defined() ? p.desc() : std::string("undefined"),
            "; ZeRO-1 shards f32 or f64 parameters (keep bf16 master weights in f32)");
      check(first || p.dtype() == dtype, "[ZeroOptimizer] parameters mix ", dtype_name(dtype),
            " and ", dtype_name(p.dtype()), " (parameter ", i, " of group ", g,
            "); use one dtype, or one ZeroOptimizer per dtype");
      check(first || p.device() == device, "[ZeroOptimizer] parameters live on ", device.str(),
            " and ", p.device().str(), " (parameter ", i, " of group ", g,
            "); move the model to one device first");
      check(std::find(seen.begin(), seen.end(), &p.impl()) == seen.end(),
            "[ZeroOptimizer] parameter ", i, " of group ", g,
            " appears twice; pass each tensor once (tied weights are one parameter)");
      seen.push_back(&p.impl());
      dtype = p.dtype();
      device = p.device();
      first = false;
    }
  }
}

/// Lays the parameters end to end and cuts out this rank's chunk.
std::unique_ptr<ZeroLayout> make_layout(const std::vector<optim::ParamGroup>& groups, int rank,
                                        int size) {
  auto l = std::make_unique<ZeroLayout>();
  DType dtype = DType::f32;
  Device device = Device::cpu();
  int64_t total = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const Tensor& p : groups[g].params) {
      l->params.push_back(p);
      l->group_of.push_back(g);
      l->offsets.push_back(total);
      total += p.numel();
      dtype = p.dtype();
      device = p.device();
    }
  }
  l->chunk_numel = std::max<int64_t>(1, (total + size - 1) / size);
  const int64_t padded = l->chunk_numel * size;
  l->flat_grad = zeros({padded}, dtype, device);
  l->grad_chunk = zeros({l->chunk_numel}, dtype, device);
  l->flat_param = zeros({padded}, dtype, device);
  l->chunk = zeros({l->chunk_numel}, dtype, device);
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
  // The flags are written on the host and reduced where the communicator works (NCCL: GPU).
  Tensor wire = l.flags.to(comm_->device());
  WorkPtr flag_work = comm_->all_reduce_async(wire, ReduceOp::max);
  WorkPtr grad_work = comm_->reduce_scatter_async(l.flat_grad, l.grad_chunk, ReduceOp::avg);
  flag_work->wait(comm_->timeout());
  grad_work->wait(comm_->timeout());
  if (!wire.same(l.flags)) {
    l.flags = wire.to(Device::cpu());
    flags = l.flags.data<int32_t>();
  }
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

const std::vector<Tensor>& ZeroOptimizer::parameters() const { return layout_->params; }

namespace {

/// Each piece's index within its group of the shard optimizer (pieces go in in order).
std::vector<size_t> index_in_group(const ZeroLayout& l) {
  std::vector<size_t> count(l.group_of.empty() ? 0 : l.group_of.back() + 1, 0), out;
  for (const Piece& p : l.pieces) out.push_back(count[l.group_of[p.param]]++);
  return out;
}

void check_names(const std::vector<std::string>& names, const ZeroLayout& l, const char* what) {
  check(names.size() == l.params.size(), "[ZeroOptimizer] ", what, ": ", names.size(),
        " names for ", l.params.size(), " parameters");
}

}  // namespace

ShardState ZeroOptimizer::export_state(const std::vector<std::string>& names) const {
  const ZeroLayout& l = *layout_;
  check_names(names, l, "export_state");
  std::vector<size_t> k_of = index_in_group(l);
  std::map<std::string, const Piece*> by_key;  // "<group>.<index>" of the shard optimizer
  for (size_t i = 0; i < l.pieces.size(); ++i) {
    by_key[str_cat(l.group_of[l.pieces[i].param], ".", k_of[i])] = &l.pieces[i];
  }
  ShardState out;
  for (const auto& [key, t] : inner_->state_dict()) {
    if (key == "step") {
      out.whole["step"] = t;
      continue;
    }
    size_t dot = key.find('.', key.find('.') + 1);  // "<group>.<index>.<slot>"
    auto it = by_key.find(key.substr(0, dot));
    check_internal(dot != std::string::npos && it != by_key.end(), "ZeRO state key ", key);
    const Piece& piece = *it->second;
    std::string name = names[piece.param] + "/" + key.substr(dot + 1);
    if (t.dim() == 0) {
      if (piece.param_begin == 0) out.whole[name] = t;
    } else {
      out.slices[name] = {l.params[piece.param].shape(), piece.param_begin,
                          t.reshape({piece.length})};
    }
  }
  return out;
}

void ZeroOptimizer::import_state(const std::vector<std::string>& names,
                                 const std::map<std::string, Tensor>& state) {
  const ZeroLayout& l = *layout_;
  check_names(names, l, "import_state");
  std::map<std::string, size_t> param_of;
  for (size_t i = 0; i < names.size(); ++i) param_of[names[i]] = i;
  std::vector<size_t> k_of = index_in_group(l);
  std::vector<int64_t> piece_of(l.params.size(), -1);  // at most one piece per parameter
  for (size_t i = 0; i < l.pieces.size(); ++i)
    piece_of[l.pieces[i].param] = static_cast<int64_t>(i);
  std::map<std::string, Tensor> inner;
  for (const auto& [key, t] : state) {
    if (key == "step") {
      inner["step"] = t;
      continue;
    }
    size_t slash = key.find('/');
    check(slash != std::string::npos && slash > 0 && slash + 1 < key.size(),
          "[ZeroOptimizer] import_state: key '", key, "' is not of the form <param>/<slot>");
    auto it = param_of.find(key.substr(0, slash));
    check(it != param_of.end(), "[ZeroOptimizer] import_state: optimizer state '", key,
          "' is for parameter '", key.substr(0, slash),
          "', which this optimizer does not have; was it written for another model?");
    const Tensor& p = l.params[it->second];
    check(t.dim() == 0 || t.shape() == p.shape(), "[ZeroOptimizer] import_state: state '", key,
          "' is ", t.desc(), " but parameter '", it->first, "' is ", p.desc());
    if (piece_of[it->second] < 0) continue;  // another rank's shard holds this parameter
    auto k = static_cast<size_t>(piece_of[it->second]);
    const Piece& piece = l.pieces[k];
    std::string inner_key =
        str_cat(l.group_of[piece.param], ".", k_of[k], ".", key.substr(slash + 1));
    inner[inner_key] = t.dim() == 0
                           ? t
                           : t.contiguous()
                                 .reshape({p.numel()})
                                 .slice(0, piece.param_begin, piece.param_begin + piece.length)
                                 .contiguous();
  }
  check(inner.count("step"), "[ZeroOptimizer] import_state: the state has no 'step' entry");
  inner_->load_state_dict(inner);
}

}  // namespace strata::dist
