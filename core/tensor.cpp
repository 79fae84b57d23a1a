// Tensor handle basics: storage, factories, element access, autograd entry points, printing.
#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/backend.h"
#include "core/backend/cpu/copy.h"
#include "core/backend/cuda/copy.h"

namespace strata {

Storage::Storage(int64_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = backend_for(device).allocate(nbytes, device);
}

Storage::~Storage() { backend_for(device_).deallocate(data_, nbytes_, device_); }

TensorImpl& Tensor::impl() const {
  check(impl_ != nullptr, "[tensor] use of an undefined (empty) tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(dtype());
}

void Tensor::check_access(DType want) const {
  check(dtype() == want, "[tensor] data<", dtype_name(want), ">() on a tensor of dtype ",
        dtype_name(dtype()), "; convert with .to(dtype) first");
  check(device().is_cpu(), "[tensor] host access to a tensor on ", device().str(),
        "; copy it with .to(Device::cpu()) first");
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return str_cat(dtype_name(dtype()), shape_str(shape()), " ", device().str());
}

double Tensor::item() const {
  check(numel() == 1, "[item] needs a one-element tensor, got ", desc());
  Tensor h = to(Device::cpu()).to(DType::f64).contiguous();
  return *h.data<double>();
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor h = to(Device::cpu()).to(DTypeOf<T>::value).contiguous();
  const T* p = h.data<T>();
  return std::vector<T>(p, p + h.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

Tensor& Tensor::set_requires_grad(bool on) {
  check(is_floating(dtype()) || !on,
        "[requires_grad] only floating tensors can require "
        "gradients, got ",
        desc());
  check(is_leaf(), "[requires_grad] can only be set on leaf tensors; use detach() first");
  impl().requires_grad = on;
  return *this;
}

void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) {
  run_backward({*this}, {grad}, retain_graph, create_graph);
}

Tensor Tensor::detach() const {
  auto out = std::make_shared<TensorImpl>();
  out->storage = impl().storage;
  out->shape = impl().shape;
  out->strides = impl().strides;
  out->offset = impl().offset;
  out->dtype = impl().dtype;
  return Tensor(std::move(out));
}

void Tensor::register_grad_ready_hook(GradHook hook) {
  check(is_leaf() && requires_grad(),
        "[hook] grad-ready hooks go on leaves that require "
        "grad (parameters), got ",
        desc());
  impl().grad_ready_hooks.push_back(std::move(hook));
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), device);
  int64_t n = numel() * dtype_size(dtype());
  if (device.is_cpu()) {
    backend_for(src.device()).copy_to_host(out.raw_data(), src.raw_data(), n, src.device());
  } else if (src.device().is_cpu()) {
    backend_for(device).copy_from_host(out.raw_data(), src.raw_data(), n, device);
  } else {
    Tensor host = src.to(Device::cpu());
    return host.to(device);
  }
  Tensor self = *this;
  return record("to_device", out, {self},
                [self](const Tensor& g) { return std::vector<Tensor>{g.to(self.device())}; });
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) {
    check(d >= 0, "[empty] negative dimension in shape ", shape_str(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(numel_of(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  // Filled where it lives: a GPU tensor needs no host buffer and no synchronous copy.
  // (cpu::fill divides the work by numel: an empty tensor must not reach it.)
  if (t.numel() == 0) return t;
  if (device.is_cuda()) {
    cuda::fill(t, value);
  } else {
    cpu::fill(t, value);
  }
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend_for(device).fill_zero(t.raw_data(), t.numel() * dtype_size(dtype), device);
  return t;
}
Tensor ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor scalar_tensor(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}

Tensor arange(double start, double end, double step, DType dtype) {
  check(step != 0, "[arange] step must be non-zero");
  auto n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = empty({std::max<int64_t>(n, 0)}, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = start + static_cast<double>(i) * step;
  return t.to(dtype);
}

Tensor eye(int64_t n, DType dtype) {
  Tensor t = zeros({n, n}, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i * n + i] = 1.0;
  return t.to(dtype);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  check(static_cast<int64_t>(values.size()) == numel_of(shape), "[from_vector] ", values.size(),
        " values do not fill shape ", shape_str(shape), " (", numel_of(shape), " elements)");
  Tensor t = empty(shape, DTypeOf<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t.to(device);
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, Device);

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  check(a.device() == b.device(), "[", op, "] tensors are on different devices: ", a.desc(),
        " and ", b.desc(), "; move one with .to(device)");
}
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  check(a.dtype() == b.dtype(), "[", op, "] dtype mismatch: ", a.desc(), " and ", b.desc(),
        "; convert one with .to(dtype)");
}
void check_floating(const char* op, const Tensor& t) {
  check(is_floating(t.dtype()), "[", op, "] needs a floating tensor (f32, f64, bf16, f16), got ",
        t.desc());
}
void check_dim(const char* op, const Tensor& t, int64_t ndim, const char* what) {
  check(t.dim() == ndim, "[", op, "] expected ", what, " with ", ndim, " dimensions, got ",
        t.desc());
}

namespace {

void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& shape, size_t d,
               int64_t base, int64_t edge, bool is_float) {
  int64_t n = shape[d];
  int64_t stride = numel_of(Shape(shape.begin() + d + 1, shape.end()));
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge && i == edge) {
      os << "..., ";
      i = n - edge - 1;
      continue;
    }
    if (d + 1 == shape.size()) {
      double x = v[base + i];
      if (is_float) {
        os << std::setprecision(5) << x;
      } else {
        os << static_cast<int64_t>(x);
      }
    } else {
      print_rec(os, v, shape, d + 1, base + i * stride, edge, is_float);
    }
    if (i + 1 < n) os << (d + 1 == shape.size() ? ", " : ",\n ");
  }
  os << ']';
}

}  // namespace

std::string to_string(const Tensor& t, int64_t edge) {
  if (!t.defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(";
  std::vector<double> v = t.to_vector<double>();
  if (t.dim() == 0) {
    os << v[0];
  } else {
    print_rec(os, v, t.shape(), 0, 0, edge, is_floating(t.dtype()));
  }
  os << ", " << t.desc() << (t.requires_grad() ? ", requires_grad" : "") << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << to_string(t); }

}  // namespace strata
