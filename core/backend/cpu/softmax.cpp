// Softmax kernels. Rows (inner == 1) run one per thread with unit-stride loops; otherwise
// blocks of kColumns adjacent columns are swept row by row so the inner loop stays
// unit-stride too. Exponentials use the vectorised fast_exp.
#include "core/backend/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/backend/cpu/fast_exp.h"
#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

constexpr int64_t kColumns = 64;

template <class T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

/// One row: y = softmax(x) or log_softmax(x); returns log(sum(exp(x))) as a by-product.
template <class T>
T softmax_row(const T* x, T* y, int64_t n, bool log) {
  T m = row_max(x, n);
  T s = 0;
  if (log || y == nullptr) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += fast_exp(x[i] - m);
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) {
      T e = fast_exp(x[i] - m);
      y[i] = e;
      s += e;
    }
  }
  T lse = m + std::log(s);
  if (y == nullptr) return lse;
  if (log) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - lse;
  } else {
    T inv = T(1) / s;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
  return lse;
}

/// Columns [c0, c1) of one (n, inner) slab; writes y (may be null) and lse (c1 - c0).
template <class T>
void softmax_columns(const T* x, T* y, T* lse, int64_t n, int64_t inner, int64_t c0, int64_t c1,
                     bool log) {
  const int64_t w = c1 - c0;
  T m[kColumns], s[kColumns];
  std::fill(m, m + w, -std::numeric_limits<T>::infinity());
  std::fill(s, s + w, T(0));
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner + c0;
    for (int64_t j = 0; j < w; ++j) m[j] = std::max(m[j], xr[j]);
  }
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner + c0;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) s[j] += fast_exp(xr[j] - m[j]);
  }
  for (int64_t j = 0; j < w; ++j) lse[j] = m[j] + std::log(s[j]);
  if (y == nullptr) return;
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * inner + c0;
    T* yr = y + r * inner + c0;
    if (log) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) yr[j] = xr[j] - lse[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) yr[j] = fast_exp(xr[j] - lse[j]);
    }
  }
}

/// Runs softmax over all rows or column blocks; y and/or lse (outer, inner) may be null.
template <class T>
void softmax_all(const T* x, T* y, T* lse, int64_t outer, int64_t n, int64_t inner, bool log) {
  const bool parallel = outer * n * inner >= kParallelGrain;
  if (inner == 1) {
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      T l = softmax_row(x + o * n, y ? y + o * n : nullptr, n, log);
      if (lse) lse[o] = l;
    }
    return;
  }
  const int64_t blocks = (inner + kColumns - 1) / kColumns;
#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    int64_t o = t / blocks, c0 = (t % blocks) * kColumns, c1 = std::min(inner, c0 + kColumns);
    T buf[kColumns];
    T* l = lse ? lse + o * inner + c0 : buf;
    softmax_columns(x + o * n * inner, y ? y + o * n * inner : nullptr, l, n, inner, c0, c1, log);
  }
}

template <class T>
void backward_row(const T* g, const T* y, T* gx, int64_t n, int64_t stride, bool log) {
  T acc = 0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) acc += g[i * stride];
    for (int64_t i = 0; i < n; ++i) gx[i * stride] = g[i * stride] - fast_exp(y[i * stride]) * acc;
  } else {
    for (int64_t i = 0; i < n; ++i) acc += g[i * stride] * y[i * stride];
    for (int64_t i = 0; i < n; ++i) gx[i * stride] = y[i * stride] * (g[i * stride] - acc);
  }
}

template <class T>
void backward_contiguous_row(const T* g, const T* y, T* gx, int64_t n, bool log) {
  T acc = 0;
  if (log) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += g[i];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) gx[i] = g[i] - fast_exp(y[i]) * acc;
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += g[i] * y[i];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) gx[i] = y[i] * (g[i] - acc);
  }
}

template <class F>
void for_floating(const Tensor& t, F&& f) {
  if (t.dtype() == DType::f64) {
    f(double{});
  } else {
    check_internal(t.dtype() == DType::f32, "softmax kernel on ", t.desc());
    f(float{});
  }
}

}  // namespace

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log) {
  for_floating(x, [&](auto tag) {
    using T = decltype(tag);
    softmax_all<T>(x.data<T>(), y.data<T>(), nullptr, outer, n, inner, log);
  });
}

void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t n,
                      int64_t inner, bool log) {
  for_floating(g, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = g.data<T>();
    const T* yp = y.data<T>();
    T* op = gx.data<T>();
#pragma omp parallel for if (outer * n * inner >= kParallelGrain) schedule(static)
    for (int64_t t = 0; t < outer * inner; ++t) {
      int64_t o = t / inner, c = t % inner, base = o * n * inner + c;
      if (inner == 1) {
        backward_contiguous_row(gp + base, yp + base, op + base, n, log);
      } else {
        backward_row(gp + base, yp + base, op + base, n, inner, log);
      }
    }
  });
}

void logsumexp(const Tensor& x, const Tensor& out, int64_t outer, int64_t n, int64_t inner) {
  for_floating(x, [&](auto tag) {
    using T = decltype(tag);
    softmax_all<T>(x.data<T>(), nullptr, out.data<T>(), outer, n, inner, false);
  });
}

}  // namespace strata::cpu
