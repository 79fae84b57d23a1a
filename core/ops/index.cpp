// Shape and indexing ops: checks, dispatch, forward and backward side by side. Each backward
// is built from other ops of this file or views, so create_graph backward works.
#include "core/ops/index.h"

#include <algorithm>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/copy.h"
#include "core/backend/cpu/index.h"
#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/index.h"
#include "core/ops/dispatch.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

/// dst = src (same shape) with the copy kernel of their device (see dispatch.h).
void copy_kernel(const Tensor& src, const Tensor& dst) {
  if (on_cuda(dst)) return cuda::copy(src, dst);
  cpu::copy(src, dst);
}

/// A contiguous copy of x that owns its storage (the starting point of scatter-like ops).
Tensor fresh_copy(const Tensor& x) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  copy_kernel(x, out);
  return out;
}

/// Checks that index has x's rank and fits in `limit`'s sizes (except dim unless `all`).
void check_index_shape(const char* op, const Tensor& index, const Tensor& limit, int64_t dim,
                       bool all, const char* limit_name) {
  check(index.dim() == limit.dim(), "[", op, "] index ", index.desc(), " must have as many ",
        "dimensions as ", limit_name, " ", limit.desc());
  for (int64_t d = 0; d < index.dim(); ++d) {
    if (d == dim && !all) continue;
    check(index.shape()[d] <= limit.shape()[d], "[", op, "] index ", index.desc(),
          " is larger than ", limit_name, " ", limit.desc(), " in dimension ", d);
  }
}

/// pads for `pad` that grow `small` to `big` at the end of every dim.
std::vector<int64_t> trailing_pads(const Shape& small, const Shape& big) {
  std::vector<int64_t> pads;
  for (int64_t d = static_cast<int64_t>(big.size()) - 1; d >= 0; --d) {
    pads.push_back(0);
    pads.push_back(big[d] - small[d]);
  }
  return pads;
}

/// Constant padding by non-negative amounts per dim: (before, after) for each dim in order.
Tensor pad_positive(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& amounts,
                    double value) {
  Shape shape = x.shape();
  for (int64_t d = 0; d < x.dim(); ++d) shape[d] += amounts[d].first + amounts[d].second;
  Tensor out = full(shape, value, x.dtype(), x.device());
  {
    NoGradGuard guard;
    Tensor inner = out;
    for (int64_t d = 0; d < x.dim(); ++d) {
      inner = inner.slice(d, amounts[d].first, amounts[d].first + x.shape()[d]);
    }
    copy_kernel(x, inner);
  }
  Shape in_shape = x.shape();
  return record("pad", out, {x}, [amounts, in_shape](const Tensor& g) {
    Tensor r = g;
    for (size_t d = 0; d < in_shape.size(); ++d) {
      if (amounts[d].first != 0 || amounts[d].second != 0) {
        r = r.slice(static_cast<int64_t>(d), amounts[d].first, amounts[d].first + in_shape[d]);
      }
    }
    return std::vector<Tensor>{r};
  });
}

}  // namespace

Tensor check_index_range(const char* op, const Tensor& index, int64_t bound,
                         const std::string& what) {
  check(index.dtype() == DType::i64, "[", op, "] index must be i64, got ", index.desc(),
        "; convert it with .to(DType::i64)");
  Tensor idx = index.contiguous();
  int64_t bad =
      on_cuda(idx) ? cuda::first_out_of_range(idx, bound) : cpu::first_out_of_range(idx, bound);
  if (bad >= 0) {
    const int64_t value = idx.reshape({-1}).select(0, bad).to(Device::cpu()).data<int64_t>()[0];
    throw Error(str_cat("[", op, "] index ", value, " (position ", bad, " of ", index.desc(),
                        ") is out of range for ", what, "; indices must be in [0, ", bound, ")"));
  }
  return idx;
}

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  check(!tensors.empty(), "[concat] needs at least one tensor");
  const Tensor& first = tensors[0];
  dim = wrap_dim(dim, first.dim(), "concat");
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_same_dtype("concat", first, t);
    check_same_device("concat", first, t);
    bool same_rank = t.dim() == first.dim();
    for (int64_t d = 0; same_rank && d < t.dim(); ++d) {
      same_rank = d == dim || t.shape()[d] == first.shape()[d];
    }
    check(same_rank, "[concat] tensor ", i, " is ", t.desc(), " but tensor 0 is ", first.desc(),
          "; all dimensions except ", dim, " must match");
    shape[dim] += t.shape()[dim];
  }
  Tensor out = empty(shape, first.dtype(), first.device());
  std::vector<int64_t> starts;
  {
    NoGradGuard guard;
    int64_t at = 0;
    for (const Tensor& t : tensors) {
      starts.push_back(at);
      copy_kernel(t, out.slice(dim, at, at + t.shape()[dim]));
      at += t.shape()[dim];
    }
    starts.push_back(at);
  }
  std::vector<bool> needs;
  for (const Tensor& t : tensors) needs.push_back(t.requires_grad());
  return record("concat", out, tensors, [dim, starts, needs](const Tensor& g) {
    std::vector<Tensor> grads(needs.size());
    for (size_t i = 0; i < needs.size(); ++i) {
      if (needs[i]) grads[i] = g.slice(dim, starts[i], starts[i + 1]);
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  check(!tensors.empty(), "[stack] needs at least one tensor");
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check(tensors[i].shape() == tensors[0].shape(), "[stack] tensor ", i, " is ", tensors[i].desc(),
          " but tensor 0 is ", tensors[0].desc(), "; stacked tensors must have equal shapes");
    parts.push_back(tensors[i].unsqueeze(dim));
  }
  return concat(parts, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  check(size > 0, "[split] chunk size must be positive, got ", size);
  dim = wrap_dim(dim, x.dim(), "split");
  std::vector<Tensor> parts;
  for (int64_t at = 0; at < x.shape()[dim]; at += size) {
    parts.push_back(x.slice(dim, at, std::min(at + size, x.shape()[dim])));
  }
  return parts;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_same_device("gather", x, index);
  dim = wrap_dim(dim, x.dim(), "gather");
  check_index_shape("gather", index, x, dim, false, "x");
  Tensor idx = check_index_range("gather", index, x.shape()[dim],
                                 str_cat("dimension ", dim, " of x ", x.desc()));
  Tensor out = empty(index.shape(), x.dtype(), x.device());
  if (on_cuda(x)) {
    cuda::gather(x, dim, idx, out);
  } else {
    cpu::gather(x, dim, idx, out);
  }
  Shape x_shape = x.shape();
  return record("gather", out, {x}, [x_shape, dim, idx](const Tensor& g) {
    Tensor base = zeros(x_shape, g.dtype(), g.device());
    return std::vector<Tensor>{scatter(base, dim, idx, g, true)};
  });
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src,
               bool accumulate) {
  const char* op = accumulate ? "scatter_add" : "scatter";
  check_same_device(op, x, index);
  check_same_device(op, x, src);
  check_same_dtype(op, x, src);
  dim = wrap_dim(dim, x.dim(), op);
  check_index_shape(op, index, src, dim, true, "src");
  check_index_shape(op, index, x, dim, false, "x");
  Tensor idx =
      check_index_range(op, index, x.shape()[dim], str_cat("dimension ", dim, " of x ", x.desc()));
  Tensor out = fresh_copy(x);
  if (on_cuda(out)) {
    cuda::scatter(out, dim, idx, src, accumulate);
  } else {
    cpu::scatter(out, dim, idx, src, accumulate);
  }
  Shape src_shape = src.shape();
  bool need_x = x.requires_grad(), need_src = src.requires_grad();
  return record(op, out, {x, src}, [=](const Tensor& g) {
    Tensor gx, gs;
    if (need_x) {
      gx = accumulate ? g : scatter(g, dim, idx, zeros(idx.shape(), g.dtype(), g.device()));
    }
    if (need_src) {
      gs = gather(g, dim, idx);
      if (gs.shape() != src_shape) gs = pad(gs, trailing_pads(gs.shape(), src_shape));
    }
    return std::vector<Tensor>{gx, gs};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_same_device("index_select", x, index);
  dim = wrap_dim(dim, x.dim(), "index_select");
  check(index.dim() <= 1, "[index_select] index must be 1-D, got ", index.desc());
  Tensor idx = check_index_range("index_select", index, x.shape()[dim],
                                 str_cat("dimension ", dim, " of x ", x.desc()));
  Shape shape = x.shape();
  shape[dim] = idx.numel();
  Tensor out = empty(shape, x.dtype(), x.device());
  if (on_cuda(x)) {
    cuda::index_select(x, dim, idx, out);
  } else {
    cpu::index_select(x, dim, idx, out);
  }
  Shape x_shape = x.shape();
  return record("index_select", out, {x}, [x_shape, dim, idx](const Tensor& g) {
    return std::vector<Tensor>{index_add(zeros(x_shape, g.dtype(), g.device()), dim, idx, g)};
  });
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_same_device("index_add", x, index);
  check_same_device("index_add", x, src);
  check_same_dtype("index_add", x, src);
  dim = wrap_dim(dim, x.dim(), "index_add");
  check(index.dim() <= 1, "[index_add] index must be 1-D, got ", index.desc());
  Shape want = x.shape();
  want[dim] = index.numel();
  check(src.shape() == want, "[index_add] src ", src.desc(), " must have shape ", shape_str(want),
        " (x ", x.desc(), " with dimension ", dim, " of the index's length)");
  Tensor idx = check_index_range("index_add", index, x.shape()[dim],
                                 str_cat("dimension ", dim, " of x ", x.desc()));
  Tensor out = fresh_copy(x);
  if (on_cuda(out)) {
    cuda::index_add(out, dim, idx, src.contiguous(), -1);
  } else {
    cpu::index_add(out, dim, idx, src.contiguous(), -1);
  }
  bool need_src = src.requires_grad();
  return record("index_add", out, {x, src}, [dim, idx, need_src](const Tensor& g) {
    return std::vector<Tensor>{g, need_src ? index_select(g, dim, idx) : Tensor()};
  });
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  check(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) <= 2 * x.dim(),
        "[pad] needs (before, after) pairs for at most ", x.dim(), " dimensions of ", x.desc(),
        ", got ", pads.size(), " values");
  std::vector<std::pair<int64_t, int64_t>> amounts(x.dim(), {0, 0});
  Tensor cropped = x;
  for (size_t k = 0; k < pads.size() / 2; ++k) {
    int64_t d = x.dim() - 1 - static_cast<int64_t>(k);
    int64_t before = pads[2 * k], after = pads[2 * k + 1];
    check(x.shape()[d] + before + after >= 0, "[pad] padding (", before, ", ", after,
          ") of dimension ", d, " of ", x.desc(), " gives a negative size");
    // Negative pads crop (a differentiable slice); positive pads grow.
    int64_t start = std::max<int64_t>(0, -before);
    int64_t end = x.shape()[d] - std::max<int64_t>(0, -after);
    if (start != 0 || end != x.shape()[d]) cropped = cropped.slice(d, start, std::max(start, end));
    amounts[d] = {std::max<int64_t>(0, before), std::max<int64_t>(0, after)};
  }
  bool grows = std::any_of(amounts.begin(), amounts.end(),
                           [](const auto& a) { return a.first > 0 || a.second > 0; });
  return grows ? pad_positive(cropped, amounts, value) : cropped;
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale_h, int64_t scale_w) {
  check_dim("upsample_nearest2d", x, 4, "(N, C, H, W)");
  check(scale_h >= 1 && scale_w >= 1, "[upsample_nearest2d] scale factors must be >= 1, got (",
        scale_h, ", ", scale_w, ")");
  const Shape& s = x.shape();
  Tensor out = empty({s[0], s[1], s[2] * scale_h, s[3] * scale_w}, x.dtype(), x.device());
  if (on_cuda(x)) {
    cuda::upsample_nearest2d(x.contiguous(), out, scale_h, scale_w);
  } else {
    cpu::upsample_nearest2d(x.contiguous(), out, scale_h, scale_w);
  }
  Shape blocks = {s[0], s[1], s[2], scale_h, s[3], scale_w};
  return record("upsample_nearest2d", out, {x}, [blocks](const Tensor& g) {
    return std::vector<Tensor>{sum(g.reshape(blocks), {3, 5})};
  });
}

}  // namespace strata
