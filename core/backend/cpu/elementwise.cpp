// Element-wise kernels: one dtype switch and one op switch per call, then a tight loop that
// the compiler vectorises (unit-stride and scalar-broadcast runs get their own loops).
#include "core/backend/cpu/elementwise.h"

#include <cmath>

#include "core/backend/cpu/fast_exp.h"
#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

template <class T, class F>
void run_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  using R = std::remove_cv_t<decltype(f(T{}, T{}))>;
  const T* ap = static_cast<const T*>(a.raw_data());
  const T* bp = static_cast<const T*>(b.raw_data());
  R* op = static_cast<R*>(out.raw_data());
  strided_for<3>(
      out.shape(), {out.strides(), a.strides(), b.strides()},
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        R* o = op + off[0];
        const T* x = ap + off[1];
        const T* y = bp + off[2];
        if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
        } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
          const T yv = *y;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
        } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
          const T xv = *x;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
        }
      });
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (op) {
    case BinaryOp::add:
      return run_binary<T>(a, b, out, [](T x, T y) { return T(x + y); });
    case BinaryOp::sub:
      return run_binary<T>(a, b, out, [](T x, T y) { return T(x - y); });
    case BinaryOp::mul:
      return run_binary<T>(a, b, out, [](T x, T y) { return T(x * y); });
    case BinaryOp::div:
      return run_binary<T>(a, b, out, [](T x, T y) { return T(x / y); });
    case BinaryOp::maximum:
      return run_binary<T>(a, b, out, [](T x, T y) { return x > y || x != x ? x : y; });
    case BinaryOp::minimum:
      return run_binary<T>(a, b, out, [](T x, T y) { return x < y || x != x ? x : y; });
    case BinaryOp::pow:
      return run_binary<T>(a, b, out, [](T x, T y) { return T(std::pow(x, y)); });
    case BinaryOp::eq:
      return run_binary<T>(a, b, out, [](T x, T y) { return x == y; });
    case BinaryOp::ne:
      return run_binary<T>(a, b, out, [](T x, T y) { return x != y; });
    case BinaryOp::lt:
      return run_binary<T>(a, b, out, [](T x, T y) { return x < y; });
    case BinaryOp::le:
      return run_binary<T>(a, b, out, [](T x, T y) { return x <= y; });
    case BinaryOp::gt:
      return run_binary<T>(a, b, out, [](T x, T y) { return x > y; });
    case BinaryOp::ge:
      return run_binary<T>(a, b, out, [](T x, T y) { return x >= y; });
  }
}

template <class T, class F>
void run_unary(const Tensor& x, const Tensor& out, F f) {
  const T* xp = static_cast<const T*>(x.raw_data());
  T* op = static_cast<T*>(out.raw_data());
  strided_for<2>(
      out.shape(), {out.strides(), x.strides()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        T* o = op + off[0];
        const T* v = xp + off[1];
        if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] = f(v[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(v[i * st[1]]);
        }
      },
      8);
}

template <class T>
constexpr T kSqrt2OverPi = T(0.7978845608028654);
template <class T>
constexpr T kInvSqrt2 = T(0.7071067811865476);
template <class T>
constexpr T kInvSqrt2Pi = T(0.3989422804014327);

/// 2u for gelu_tanh, u = sqrt(2 / pi) * (v + 0.044715 v^3).
template <class T>
T gelu_tanh_2u(T v) {
  return T(2) * kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v);
}

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, const Tensor& out, T alpha) {
  switch (op) {
    case UnaryOp::neg:
      return run_unary<T>(x, out, [](T v) { return -v; });
    case UnaryOp::exp:
      return run_unary<T>(x, out, [](T v) { return fast_exp(v); });
    case UnaryOp::log:
      return run_unary<T>(x, out, [](T v) { return std::log(v); });
    case UnaryOp::sqrt:
      return run_unary<T>(x, out, [](T v) { return std::sqrt(v); });
    case UnaryOp::rsqrt:
      return run_unary<T>(x, out, [](T v) { return T(1) / std::sqrt(v); });
    case UnaryOp::abs:
      return run_unary<T>(x, out, [](T v) { return std::abs(v); });
    case UnaryOp::sign:
      return run_unary<T>(x, out, [](T v) { return T((v > T(0)) - (v < T(0))); });
    case UnaryOp::tanh:
      return run_unary<T>(x, out, [](T v) { return fast_tanh(v); });
    case UnaryOp::sigmoid:
      return run_unary<T>(x, out, [](T v) { return fast_sigmoid(v); });
    case UnaryOp::relu:
      return run_unary<T>(x, out, [](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::leaky_relu:
      return run_unary<T>(x, out, [alpha](T v) { return v > T(0) ? v : alpha * v; });
    case UnaryOp::gelu:
      return run_unary<T>(x, out,
                          [](T v) { return T(0.5) * v * (T(1) + std::erf(v * kInvSqrt2<T>)); });
    case UnaryOp::gelu_tanh:
      // 0.5 * (1 + tanh(u)) = sigmoid(2u): one exp, and no cancellation for v << 0.
      return run_unary<T>(x, out, [](T v) { return v * fast_sigmoid(gelu_tanh_2u(v)); });
    case UnaryOp::silu:
      return run_unary<T>(x, out, [](T v) { return v * fast_sigmoid(v); });
    case UnaryOp::sin:
      return run_unary<T>(x, out, [](T v) { return std::sin(v); });
    case UnaryOp::cos:
      return run_unary<T>(x, out, [](T v) { return std::cos(v); });
    case UnaryOp::erf:
      return run_unary<T>(x, out, [](T v) { return std::erf(v); });
    case UnaryOp::square:
      return run_unary<T>(x, out, [](T v) { return v * v; });
    case UnaryOp::reciprocal:
      return run_unary<T>(x, out, [](T v) { return T(1) / v; });
    case UnaryOp::pow_scalar:
      return run_unary<T>(x, out, [alpha](T v) { return std::pow(v, alpha); });
    case UnaryOp::log1p:
      return run_unary<T>(x, out, [](T v) { return std::log1p(v); });
    case UnaryOp::expm1:
      return run_unary<T>(x, out, [](T v) { return std::expm1(v); });
    case UnaryOp::step:
      return run_unary<T>(x, out, [](T v) { return T(v > T(0)); });
  }
}

template <class T, class F>
void run_unary_backward(const Tensor& g, const Tensor& x, const Tensor& out, F f) {
  run_binary<T>(g, x, out, f);
}

template <class T>
void unary_backward_typed(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y,
                          const Tensor& out, T alpha) {
  switch (op) {
    case UnaryOp::relu:
      return run_binary<T>(g, x, out, [](T d, T v) { return v > T(0) ? d : T(0); });
    case UnaryOp::leaky_relu:
      return run_binary<T>(g, x, out, [alpha](T d, T v) { return v > T(0) ? d : alpha * d; });
    case UnaryOp::gelu:
      return run_binary<T>(g, x, out, [](T d, T v) {
        T cdf = T(0.5) * (T(1) + std::erf(v * kInvSqrt2<T>));
        T pdf = kInvSqrt2Pi<T> * std::exp(T(-0.5) * v * v);
        return d * (cdf + v * pdf);
      });
    case UnaryOp::gelu_tanh:
      // d/dv [v * sigmoid(2u)] = s + v * s * (1 - s) * 2u', with s = sigmoid(2u).
      return run_binary<T>(g, x, out, [](T d, T v) {
        T s = fast_sigmoid(gelu_tanh_2u(v));
        T du2 = T(2) * kSqrt2OverPi<T> * (T(1) + T(3 * 0.044715) * v * v);
        return d * (s + v * s * (T(1) - s) * du2);
      });
    case UnaryOp::silu:
      return run_binary<T>(g, x, out, [](T d, T v) {
        T s = fast_sigmoid(v);
        return d * s * (T(1) + v * (T(1) - s));
      });
    case UnaryOp::tanh:
      return run_binary<T>(g, y, out, [](T d, T t) { return d * (T(1) - t * t); });
    case UnaryOp::sigmoid:
      return run_binary<T>(g, y, out, [](T d, T s) { return d * s * (T(1) - s); });
    case UnaryOp::exp:
      return run_binary<T>(g, y, out, [](T d, T e) { return d * e; });
    default:
      throw InternalError("unary_backward: no fused backward for this op");
  }
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>) {
      throw InternalError("binary kernel called on a storage-only dtype");
    } else {
      binary_typed<T>(op, a, b, out);
    }
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha) {
  if (x.dtype() == DType::f64) return unary_typed<double>(op, x, out, alpha);
  check_internal(x.dtype() == DType::f32, "unary kernel on ", x.desc());
  unary_typed<float>(op, x, out, static_cast<float>(alpha));
}

void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y,
                    const Tensor& out, double alpha) {
  if (g.dtype() == DType::f64) return unary_backward_typed<double>(op, g, x, y, out, alpha);
  check_internal(g.dtype() == DType::f32, "unary_backward kernel on ", g.desc());
  unary_backward_typed<float>(op, g, x, y, out, static_cast<float>(alpha));
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const bool* cp = static_cast<const bool*>(cond.raw_data());
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* op = static_cast<T*>(out.raw_data());
    strided_for<4>(
        out.shape(), {out.strides(), cond.strides(), a.strides(), b.strides()},
        [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
          for (int64_t i = 0; i < n; ++i) {
            op[off[0] + i * st[0]] =
                cp[off[1] + i * st[1]] ? ap[off[2] + i * st[2]] : bp[off[3] + i * st[3]];
          }
        });
  });
}

void clamp(const Tensor& x, const Tensor& out, double lo, double hi) {
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Half> ||
                  std::is_same_v<T, bool>) {
      throw InternalError("clamp kernel called on a storage-only dtype");
    } else {
      T l = static_cast<T>(std::max<double>(lo, std::numeric_limits<T>::lowest()));
      T h = static_cast<T>(std::min<double>(hi, std::numeric_limits<T>::max()));
      run_unary<T>(x, out, [l, h](T v) { return v < l ? l : (v > h ? h : v); });
    }
  });
}

}  // namespace strata::cpu
