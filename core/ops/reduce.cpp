// Reductions and their gradients (broadcast the output gradient back over reduced dims).
#include "core/ops/reduce.h"

#include <algorithm>

#include "core/autocast.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/reduce.h"
#include "core/backend/cuda/reduce.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"

namespace strata {
namespace {

std::vector<int64_t> norm_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), op));
  std::sort(out.begin(), out.end());
  check(std::adjacent_find(out.begin(), out.end()) == out.end(), "[", op,
        "] repeated dimension in the reduction of ", x.desc());
  return out;
}

/// Output shape with reduced dims kept as 1.
Shape kept_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s = x.shape();
  for (int64_t d : dims) s[d] = 1;
  return s;
}

Shape final_shape(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  if (keepdim) return kept_shape(x, dims);
  Shape s;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!std::binary_search(dims.begin(), dims.end(), d)) s.push_back(x.shape()[d]);
  }
  return s;
}

Tensor reduce_forward(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                      const char* name) {
  if (storage_only(x.dtype())) {
    Tensor r = reduce_forward(op, x.to(DType::f32), dims, name);
    return op == ReduceOp::argmax ? r : r.to(x.dtype());
  }
  if (x.dtype() == DType::b8 || x.dtype() == DType::u8) {
    return reduce_forward(op, x.to(DType::i64), dims, name);
  }
  DType dt = op == ReduceOp::argmax ? DType::i64 : x.dtype();
  Tensor out = empty(kept_shape(x, dims), dt, x.device());
  if (on_cuda(x)) {
    cuda::reduce(op, x, dims, out);
  } else {
    cpu::reduce(op, x, dims, out);
  }
  return out;
}

Tensor extreme(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
               const char* name) {
  auto d = norm_dims(x, dims, name);
  for (int64_t k : d) {
    check(x.shape()[k] > 0, "[", name, "] reduction over the empty dimension ", k, " of ",
          x.desc());
  }
  Tensor kept = reduce_forward(op, x, d, name);
  Tensor out = kept.reshape(final_shape(x, d, keepdim));
  Tensor kept_saved = kept.detach();
  Shape ks = kept.shape();
  return record(name, out, {x}, [x, kept_saved, ks](const Tensor& g) {
    Tensor mask = eq(x, kept_saved).to(g.dtype());
    Tensor count = sum_to(mask, ks);
    return std::vector<Tensor>{mul(div(g.reshape(ks), count), mask)};
  });
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  if (autocast::wants_f32(x, dims, keepdim)) return autocast::run_f32(sum, x, dims, keepdim);
  auto d = norm_dims(x, dims, "sum");
  Tensor out = reduce_forward(ReduceOp::sum, x, d, "sum").reshape(final_shape(x, d, keepdim));
  Shape ks = kept_shape(x, d), xs = x.shape();
  return record("sum", out, {x}, [ks, xs](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(ks).expand(xs)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  if (autocast::wants_f32(x, dims, keepdim)) return autocast::run_f32(mean, x, dims, keepdim);
  check_floating("mean", x);
  auto d = norm_dims(x, dims, "mean");
  int64_t n = 1;
  for (int64_t k : d) n *= x.shape()[k];
  check(n > 0, "[mean] mean over zero elements of ", x.desc());
  return sum(x, d, keepdim) * (1.0 / static_cast<double>(n));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme(ReduceOp::max, x, dims, keepdim, "max");
}

Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme(ReduceOp::min, x, dims, keepdim, "min");
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  check_floating("var", x);
  auto d = norm_dims(x, dims, "var");
  int64_t n = 1;
  for (int64_t k : d) n *= x.shape()[k];
  int64_t denom = unbiased ? n - 1 : n;
  check(denom > 0, "[var] needs more than ", unbiased ? 1 : 0, " elements, got ", n, " in ",
        x.desc());
  Tensor centered = x - mean(x, d, true);
  return sum(square(centered), d, keepdim) * (1.0 / static_cast<double>(denom));
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  int64_t d = wrap_dim(dim, x.dim(), "argmax");
  check(x.shape()[d] > 0, "[argmax] empty dimension ", d, " of ", x.desc());
  Tensor out = reduce_forward(ReduceOp::argmax, x, {d}, "argmax");
  return out.reshape(final_shape(x, {d}, keepdim));
}

}  // namespace strata
