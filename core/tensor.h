// Tensor: a shallow, ref-counted handle to strided storage plus autograd metadata.
// Copying a Tensor shares the data; clone() copies it.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace strata {

class Tensor;
struct Node;

/// Owns one device allocation.
class Storage {
 public:
  Storage(int64_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  int64_t nbytes_ = 0;
  Device device_;
};

using GradHook = std::function<void(Tensor& grad_owner)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;      // set on results of recorded ops
  std::shared_ptr<Node> accumulator;  // leaves only, created on first use
  std::shared_ptr<TensorImpl> grad;
  std::vector<GradHook> grad_ready_hooks;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  /// Size of dimension d (negative counts from the end).
  int64_t size(int64_t d) const;
  int64_t numel() const { return numel_of(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  /// Typed pointer to the first element; checks the dtype and that the tensor is on the CPU.
  template <class T>
  T* data() const {
    check_access(DTypeOf<T>::value);
    return static_cast<T*>(impl().storage->data()) + impl().offset;
  }
  /// Untyped pointer to the first element, on the tensor's device.
  void* raw_data() const;
  /// The single value of a one-element tensor, converted to double.
  double item() const;
  /// All values, in row-major order, converted to T (copies to the host if needed).
  template <class T>
  std::vector<T> to_vector() const;

  // autograd
  bool requires_grad() const { return defined() && impl().requires_grad; }
  /// Marks a leaf as needing gradients; throws for non-floating dtypes and non-leaves.
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  /// Backpropagates from this tensor (a scalar unless `grad` is given).
  void backward(const Tensor& grad = {}, bool retain_graph = false, bool create_graph = false);
  /// Same data, cut from the graph.
  Tensor detach() const;
  /// Called once per backward pass after this leaf's gradient is complete.
  void register_grad_ready_hook(GradHook hook);

  // views and copies (defined in ops/view.cpp and ops/copy.cpp)
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }
  /// "f32[2, 3] cpu": used in error messages.
  std::string desc() const;

 private:
  void check_access(DType want) const;
  std::shared_ptr<TensorImpl> impl_;
};

// Factories. Shapes are row-major; every result is contiguous and owns fresh storage.
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
            Device device = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
/// 0-d tensor holding `value`.
Tensor scalar_tensor(double value, DType dtype = DType::f32, Device device = Device::cpu());
/// [start, end) with `step`, as i64 unless dtype says otherwise.
Tensor arange(double start, double end, double step = 1, DType dtype = DType::i64);
Tensor eye(int64_t n, DType dtype = DType::f32);
/// Copies host values into a new tensor of `shape`; the count must match.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());

std::ostream& operator<<(std::ostream& os, const Tensor& t);
/// Readable printing with at most `edge` items at each end of every dimension.
std::string to_string(const Tensor& t, int64_t edge = 3);

/// Throws an Error naming `op` unless both tensors are on the same device.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
/// Throws an Error naming `op` unless both tensors have the same dtype.
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
/// Throws an Error naming `op` unless t has a floating dtype.
void check_floating(const char* op, const Tensor& t);
/// Throws an Error naming `op` unless t has `ndim` dimensions, naming `what` it should be.
void check_dim(const char* op, const Tensor& t, int64_t ndim, const char* what);

}  // namespace strata
