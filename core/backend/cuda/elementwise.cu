// Element-wise kernels on the GPU: one functor per op, one dtype switch per launch, and
// cuda::map for the loop (vectorised when contiguous, strided otherwise); bf16/f16 compute in
// f32 inside the kernel (one read and one write, not three kernels). Math follows the CPU
// kernels' formulas (gelu_tanh as v * sigmoid(2u), NaN-propagating maximum/minimum).
#include <algorithm>
#include <limits>
#include "core/backend/cuda/elementwise.h"

#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

template <class T>
__device__ inline T dsigmoid(T v) {
  return T(1) / (T(1) + dexp(-v));
}

template <class T>
constexpr T kSqrt2OverPi = T(0.7978845608028654);
template <class T>
constexpr T kInvSqrt2 = T(0.7071067811865476);
template <class T>
constexpr T kInvSqrt2Pi = T(0.3989422804014327);

template <class T>
__device__ inline T gelu_tanh_2u(T v) {
  return T(2) * kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v);
}

template <class T>
struct Binary {
  BinaryOp op;
  // One functor per op would multiply kernels by 13; the switch is uniform across a launch
  // and costs nothing next to the memory traffic.
  __device__ auto operator()(T x, T y) const {
    switch (op) {
      case BinaryOp::add:
        return T(x + y);
      case BinaryOp::sub:
        return T(x - y);
      case BinaryOp::mul:
        return T(x * y);
      case BinaryOp::div:
        return T(x / y);
      case BinaryOp::maximum:
        return x > y || x != x ? x : y;
      case BinaryOp::minimum:
        return x < y || x != x ? x : y;
      default:  // pow
        if constexpr (std::is_floating_point_v<T>) {
          return T(::pow(x, y));
        } else {
          return T(::pow(double(x), double(y)));
        }
    }
  }
};

template <class T>
struct Compare {
  BinaryOp op;
  __device__ bool operator()(T x, T y) const {
    switch (op) {
      case BinaryOp::eq:
        return x == y;
      case BinaryOp::ne:
        return x != y;
      case BinaryOp::lt:
        return x < y;
      case BinaryOp::le:
        return x <= y;
      case BinaryOp::gt:
        return x > y;
      default:
        return x >= y;
    }
  }
};

template <class T>
struct Unary {
  UnaryOp op;
  T alpha;
  __device__ T operator()(T v) const {
    switch (op) {
      case UnaryOp::neg:
        return -v;
      case UnaryOp::exp:
        return dexp(v);
      case UnaryOp::log:
        return ::log(v);
      case UnaryOp::sqrt:
        return ::sqrt(v);
      case UnaryOp::rsqrt:
        return T(1) / ::sqrt(v);
      case UnaryOp::abs:
        return ::fabs(v);
      case UnaryOp::sign:
        return T((v > T(0)) - (v < T(0)));
      case UnaryOp::tanh:
        return ::tanh(v);
      case UnaryOp::sigmoid:
        return dsigmoid(v);
      case UnaryOp::relu:
        return v > T(0) ? v : T(0);
      case UnaryOp::leaky_relu:
        return v > T(0) ? v : alpha * v;
      case UnaryOp::gelu:
        return T(0.5) * v * (T(1) + ::erf(v * kInvSqrt2<T>));
      case UnaryOp::gelu_tanh:
        return v * dsigmoid(gelu_tanh_2u(v));
      case UnaryOp::silu:
        return v * dsigmoid(v);
      case UnaryOp::sin:
        return ::sin(v);
      case UnaryOp::cos:
        return ::cos(v);
      case UnaryOp::erf:
        return ::erf(v);
      case UnaryOp::square:
        return v * v;
      case UnaryOp::reciprocal:
        return T(1) / v;
      case UnaryOp::pow_scalar:
        return ::pow(v, alpha);
      case UnaryOp::log1p:
        return ::log1p(v);
      case UnaryOp::expm1:
        return ::expm1(v);
      default:  // step
        return T(v > T(0));
    }
  }
};

/// g * op'(v), where v is x (or y = op(x) for tanh, sigmoid, exp).
template <class T>
struct UnaryBackward {
  UnaryOp op;
  T alpha;
  __device__ T operator()(T d, T v) const {
    switch (op) {
      case UnaryOp::relu:
        return v > T(0) ? d : T(0);
      case UnaryOp::leaky_relu:
        return v > T(0) ? d : alpha * d;
      case UnaryOp::gelu: {
        T cdf = T(0.5) * (T(1) + ::erf(v * kInvSqrt2<T>));
        T pdf = kInvSqrt2Pi<T> * dexp(T(-0.5) * v * v);
        return d * (cdf + v * pdf);
      }
      case UnaryOp::gelu_tanh: {
        T s = dsigmoid(gelu_tanh_2u(v));
        T du2 = T(2) * kSqrt2OverPi<T> * (T(1) + T(3 * 0.044715) * v * v);
        return d * (s + v * s * (T(1) - s) * du2);
      }
      case UnaryOp::silu: {
        T s = dsigmoid(v);
        return d * s * (T(1) + v * (T(1) - s));
      }
      case UnaryOp::tanh:
        return d * (T(1) - v * v);
      case UnaryOp::sigmoid:
        return d * v * (T(1) - v);
      default:  // exp
        return d * v;
    }
  }
};

template <class T>
struct Select {
  __device__ T operator()(bool c, T a, T b) const { return c ? a : b; }
};

template <class T>
struct Clamp {
  T lo, hi;
  __device__ T operator()(T v) const { return v < lo ? lo : (v > hi ? hi : v); }
};

/// An op on bf16/f16 values computed in f32: every input widened, the result rounded once to
/// H (comparisons return their bool), as the CPU computes these storage types.
template <class H, class Op>
struct Widened {
  Op op;
  template <class... X>
  __device__ auto operator()(X... x) const {
    using R = decltype(op(convert<float>(x)...));
    if constexpr (std::is_same_v<R, bool>) {
      return op(convert<float>(x)...);
    } else {
      return convert<H>(op(convert<float>(x)...));
    }
  }
};

/// Calls fn(T{}, C{}) with the element type T of `t` (any dtype) and the type C its arithmetic
/// runs in: T itself, or f32 for bf16/f16 (through Widened). Floating-only kernels use
/// visit_storage (loops.cuh) instead.
template <class Fn>
void visit_compute(const Tensor& t, Fn&& fn) {
  visit_device_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_half_type<T>) {
      fn(T{}, float{});
    } else {
      fn(T{}, T{});
    }
  });
}

/// The functor that map() runs for element type T computing `op` (of compute type C).
template <class T, class Op>
auto in_storage(Op op) {
  if constexpr (is_half_type<T>) {
    return Widened<T, Op>{op};
  } else {
    return op;
  }
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_internal(a.dtype() == b.dtype(), "binary kernel mixes ", a.desc(), " and ", b.desc());
  visit_compute(a, [&](auto tag, auto ctag) {
    using T = decltype(tag);
    using C = decltype(ctag);
    if (op >= BinaryOp::eq) {
      map<bool>("compare", out, in_storage<T>(Compare<C>{op}), arg<T>(a), arg<T>(b));
    } else {
      map<T>("binary", out, in_storage<T>(Binary<C>{op}), arg<T>(a), arg<T>(b));
    }
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha) {
  visit_storage(x, Tensor(), "unary", [&](auto tag, auto ctag) {
    using T = decltype(tag);
    using C = decltype(ctag);
    map<T>("unary", out, in_storage<T>(Unary<C>{op, C(alpha)}), arg<T>(x));
  });
}

void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y,
                    const Tensor& out, double alpha) {
  const bool uses_y = op == UnaryOp::tanh || op == UnaryOp::sigmoid || op == UnaryOp::exp;
  check_internal(!uses_y || y.defined(), "unary_backward needs the forward output");
  const Tensor& v = uses_y ? y : x;
  check_internal(v.dtype() == g.dtype() && out.dtype() == g.dtype(), "unary_backward mixes ",
                 g.desc(), ", ", v.desc(), " and ", out.desc());
  visit_storage(g, Tensor(), "unary_backward", [&](auto tag, auto ctag) {
    using T = decltype(tag);
    using C = decltype(ctag);
    map<T>("unary_backward", out, in_storage<T>(UnaryBackward<C>{op, C(alpha)}), arg<T>(g),
           arg<T>(v));
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  visit_device_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map<T>("where", out, Select<T>{}, arg<bool>(cond), arg<T>(a), arg<T>(b));
  });
}

void clamp(const Tensor& x, const Tensor& out, double lo, double hi) {
  visit_compute(x, [&](auto tag, auto ctag) {
    using T = decltype(tag);
    using C = decltype(ctag);
    if constexpr (std::is_same_v<T, bool>) {
      check_internal(false, "clamp kernel called on ", x.desc());
    } else {
      C l = static_cast<C>(std::max<double>(lo, std::numeric_limits<C>::lowest()));
      C h = static_cast<C>(std::min<double>(hi, std::numeric_limits<C>::max()));
      map<T>("clamp", out, in_storage<T>(Clamp<C>{l, h}), arg<T>(x));
    }
  });
}

}  // namespace strata::cuda
