// Automatic mixed precision, as torch.autocast: while an AutocastGuard lives on a thread,
// GEMM-like ops cast their floating operands to a low dtype (bf16 or f16) and return it, and
// precision-sensitive ops (softmax, losses, norms, sum/mean) compute and return f32.
#pragma once

#include <optional>

#include "core/tensor.h"

namespace strata {

/// The low dtype of the innermost AutocastGuard alive on this thread, or nullopt (off).
std::optional<DType> autocast_dtype();

/// Turns autocast on for its lifetime (per thread, so thread ranks do not interfere). The
/// casts are autograd ops: parameters stay f32 (the master weights) and get f32 gradients.
class AutocastGuard {
 public:
  /// `low` is bf16 or f16; nullopt turns autocast off inside (backward runs that way).
  explicit AutocastGuard(std::optional<DType> low);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  std::optional<DType> prev_;
};

/// Whether f32 GEMMs on CUDA may use TF32 tensor cores (10-bit mantissa products, f32
/// sums), as torch.backends.cuda.matmul.allow_tf32: false unless a Tf32Guard allows it on
/// this thread. The CPU always computes exact f32.
bool tf32_allowed();

/// Allows or forbids TF32 f32 GEMMs on this thread for its lifetime (restoring on exit).
class Tf32Guard {
 public:
  explicit Tf32Guard(bool allow);
  ~Tf32Guard();
  Tf32Guard(const Tf32Guard&) = delete;
  Tf32Guard& operator=(const Tf32Guard&) = delete;

 private:
  bool prev_;
};

namespace autocast {

/// f32 and low-dtype tensors as `low`; anything else (f64, integers, undefined) unchanged.
inline Tensor to_low(const Tensor& t, DType low) {
  bool castable = t.defined() &&
                  (t.dtype() == DType::f32 || t.dtype() == DType::bf16 || t.dtype() == DType::f16);
  return castable && t.dtype() != low ? t.to(low) : t;
}
template <class T>
const T& to_low(const T& v, DType) {
  return v;
}

/// bf16 and f16 tensors as f32; anything else unchanged.
inline Tensor to_f32(const Tensor& t) {
  bool low = t.defined() && (t.dtype() == DType::bf16 || t.dtype() == DType::f16);
  return low ? t.to(DType::f32) : t;
}
template <class T>
const T& to_f32(const T& v) {
  return v;
}

inline bool is_low(const Tensor& t) {
  return t.defined() && (t.dtype() == DType::bf16 || t.dtype() == DType::f16);
}
template <class T>
bool is_low(const T&) {
  return false;
}

/// For a GEMM-like op (called when autocast is on): `op` on the operands cast to the low
/// dtype, with autocast off inside so that the op's own low-dtype path does not recurse.
template <class Op, class... Args>
Tensor run_low(Op&& op, const Args&... args) {
  DType low = *autocast_dtype();
  AutocastGuard off(std::nullopt);
  return op(to_low(args, low)...);
}

/// True when autocast is on and some tensor operand is bf16 or f16: then a precision-
/// sensitive op calls run_f32.
template <class... Args>
bool wants_f32(const Args&... args) {
  return autocast_dtype().has_value() && (is_low(args) || ...);
}

/// For a precision-sensitive op: `op` on the operands with bf16/f16 ones cast to f32.
template <class Op, class... Args>
Tensor run_f32(Op&& op, const Args&... args) {
  return op(to_f32(args)...);
}

}  // namespace autocast
}  // namespace strata
