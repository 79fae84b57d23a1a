// Views share storage and only change shape, strides and offset; their backward maps the
// gradient through the inverse view. reshape copies when no view is possible.
#include "core/ops/view.h"

#include <numeric>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/copy.h"
#include "core/backend/cuda/copy.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"

namespace strata {
namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

/// Strides that view `t` as `shape`, if its layout allows it without a copy.
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  if (t.is_contiguous()) {
    out = contiguous_strides(shape);
    return true;
  }
  // Group old dims into chunks that are contiguous among themselves and map each chunk
  // onto new dims (the rule of PyTorch's computeStride).
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  out.assign(shape.size(), 0);
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t base = ost.back();
  int64_t tensor_numel = 1;
  int64_t view_numel = 1;
  for (int64_t d = static_cast<int64_t>(os.size()) - 1; d >= 0; --d) {
    tensor_numel *= os[d];
    if (d == 0 || (os[d - 1] != 1 && ost[d - 1] != tensor_numel * base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * base;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        base = ost[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Shape infer_shape(const Shape& shape, int64_t numel) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      check(infer < 0, "[reshape] only one dimension can be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      check(out[i] >= 0, "[reshape] invalid dimension ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    check(known > 0 && numel % known == 0, "[reshape] cannot infer -1 in ", shape_str(shape),
          " for ", numel, " elements");
    out[infer] = numel / known;
  }
  check(numel_of(out) == numel, "[reshape] shape ", shape_str(shape), " (", numel_of(out),
        " elements) does not match the tensor's ", numel, " elements");
  return out;
}

/// The converting copy of src's device (see dispatch.h).
void copy_kernel(const Tensor& src, const Tensor& dst) {
  if (on_cuda(src)) return cuda::copy(src, dst);
  cpu::copy(src, dst);
}

}  // namespace

Tensor Tensor::reshape(const Shape& shape) const {
  Shape target = infer_shape(shape, numel());
  Shape strides;
  Tensor out = view_strides(*this, target, strides) ? make_view(*this, target, strides, offset())
                                                    : contiguous().detach().reshape(target);
  Shape in_shape = this->shape();
  return record("reshape", out, {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  check(start <= end, "[flatten] start dimension ", start, " is after end dimension ", end);
  Shape s(shape().begin(), shape().begin() + start);
  int64_t n = 1;
  for (int64_t d = start; d <= end; ++d) n *= shape()[d];
  s.push_back(n);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::permute(const Shape& dims) const {
  check(static_cast<int64_t>(dims.size()) == dim(), "[permute] ", dims.size(),
        " dimensions given for ", desc());
  Shape shape(dims.size()), strides(dims.size()), inverse(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    check(!seen[d], "[permute] dimension ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
    inverse[d] = static_cast<int64_t>(i);
  }
  Tensor out = make_view(*this, shape, strides, offset());
  return record("permute", out, {*this},
                [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  Shape dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(a, dim(), "transpose")], dims[wrap_dim(b, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  check(step > 0, "[slice] step must be positive, got ", step);
  int64_t n = shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape(), st = strides();
  s[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Tensor out = make_view(*this, s, st, offset() + start * strides()[d]);
  Shape in_shape = shape();
  return record("slice", out, {*this}, [in_shape, d, start, end, step](const Tensor& g) {
    return std::vector<Tensor>{slice_scatter(g, in_shape, d, start, end, step)};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  int64_t n = shape()[d];
  check(index >= -n && index < n, "[select] index ", index, " is out of range for dimension ", d,
        " of ", desc());
  if (index < 0) index += n;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  check(shape()[d] == 1, "[squeeze] dimension ", d, " of ", desc(), " is not of size 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}

Tensor Tensor::expand(const Shape& shape) const {
  if (shape == this->shape()) return *this;
  check(shape.size() >= static_cast<size_t>(dim()), "[expand] cannot expand ", desc(), " to ",
        shape_str(shape));
  size_t lead = shape.size() - dim();
  Shape st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    int64_t have = this->shape()[i - lead];
    check(have == shape[i] || have == 1, "[expand] cannot expand ", desc(), " to ",
          shape_str(shape), " (dimension ", i, ")");
    st[i] = have == 1 && shape[i] != 1 ? 0 : strides()[i - lead];
  }
  Tensor out = make_view(*this, shape, st, offset());
  Shape in_shape = this->shape();
  return record("expand", out, {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  copy_kernel(*this, out);
  return record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target, device());
  copy_kernel(*this, out);
  if (!is_floating(target)) return out;
  DType source = dtype();
  return record("to_dtype", out, {*this},
                [source](const Tensor& g) { return std::vector<Tensor>{g.to(source)}; });
}

Tensor slice_scatter(const Tensor& src, const Shape& shape, int64_t dim, int64_t start, int64_t end,
                     int64_t step) {
  Tensor out = zeros(shape, src.dtype(), src.device());
  {
    NoGradGuard guard;
    Tensor view = out.slice(dim, start, end, step);
    copy_(view, src);
  }
  return record("slice_scatter", out, {src}, [dim, start, end, step](const Tensor& g) {
    return std::vector<Tensor>{g.slice(dim, start, end, step)};
  });
}

}  // namespace strata
