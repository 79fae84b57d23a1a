// Pooling kernels: window bounds are computed once per output row and column, then every
// plane (N * C of them) is handled by one OpenMP iteration, so writes never collide.
#include "core/backend/cpu/pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

/// Input ranges [lo[o], hi[o]) of every output o along one axis, clipped to the input.
struct Ranges {
  std::vector<int64_t> lo, hi;
};

Ranges axis_ranges(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                   bool adaptive) {
  Ranges r{std::vector<int64_t>(out), std::vector<int64_t>(out)};
  for (int64_t o = 0; o < out; ++o) {
    if (adaptive) {
      r.lo[o] = o * in / out;
      r.hi[o] = ((o + 1) * in + out - 1) / out;
    } else {
      int64_t start = o * stride - pad;
      r.lo[o] = std::max<int64_t>(start, 0);
      r.hi[o] = std::min(start + kernel, in);
    }
  }
  return r;
}

struct Windows {
  Ranges h, w;
  explicit Windows(const PoolGeometry& g)
      : h(axis_ranges(g.in_h, g.out_h, g.kernel_h, g.stride_h, g.pad_h, g.adaptive)),
        w(axis_ranges(g.in_w, g.out_w, g.kernel_w, g.stride_w, g.pad_w, g.adaptive)) {}
  /// The divisor of an average: the padded kernel area, or the adaptive window's size.
  template <class T>
  T inv_count(const PoolGeometry& g, int64_t oh, int64_t ow) const {
    int64_t n =
        g.adaptive ? (h.hi[oh] - h.lo[oh]) * (w.hi[ow] - w.lo[ow]) : g.kernel_h * g.kernel_w;
    return T(1) / static_cast<T>(std::max<int64_t>(n, 1));
  }
};

bool parallel(const PoolGeometry& g) {
  return g.planes > 1 && g.planes * g.in_h * g.in_w >= kParallelGrain;
}

template <class T>
void max_pool_impl(const T* x, T* y, int64_t* idx, const PoolGeometry& g) {
  Windows win(g);
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for if (parallel(g)) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t at = win.h.lo[oh] * g.in_w + win.w.lo[ow];
        bool nan = false;  // a NaN wins and ends the search, as in torch
        for (int64_t h = win.h.lo[oh]; h < win.h.hi[oh] && !nan; ++h) {
          for (int64_t w = win.w.lo[ow]; w < win.w.hi[ow]; ++w) {
            T v = xp[h * g.in_w + w];
            if (v > best || v != v) {
              best = v;
              at = h * g.in_w + w;
              nan = v != v;
              if (nan) break;
            }
          }
        }
        y[p * out_plane + oh * g.out_w + ow] = best;
        idx[p * out_plane + oh * g.out_w + ow] = at;
      }
    }
  }
}

template <class T>
void scatter_impl(const T* gy, const int64_t* idx, T* gx, const PoolGeometry& g) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for if (parallel(g)) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    T* gxp = gx + p * in_plane;
    std::fill(gxp, gxp + in_plane, T(0));
    for (int64_t o = 0; o < out_plane; ++o) gxp[idx[p * out_plane + o]] += gy[p * out_plane + o];
  }
}

template <class T>
void gather_impl(const T* x, const int64_t* idx, T* y, const PoolGeometry& g) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for if (parallel(g)) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    for (int64_t o = 0; o < out_plane; ++o) {
      y[p * out_plane + o] = x[p * in_plane + idx[p * out_plane + o]];
    }
  }
}

template <class T>
void avg_pool_impl(const T* x, T* y, const PoolGeometry& g) {
  Windows win(g);
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for if (parallel(g)) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        T s = 0;
        for (int64_t h = win.h.lo[oh]; h < win.h.hi[oh]; ++h) {
          for (int64_t w = win.w.lo[ow]; w < win.w.hi[ow]; ++w) s += xp[h * g.in_w + w];
        }
        y[p * out_plane + oh * g.out_w + ow] = s * win.inv_count<T>(g, oh, ow);
      }
    }
  }
}

template <class T>
void avg_pool_backward_impl(const T* gy, T* gx, const PoolGeometry& g) {
  Windows win(g);
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for if (parallel(g)) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    T* gxp = gx + p * in_plane;
    std::fill(gxp, gxp + in_plane, T(0));
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        T v = gy[p * out_plane + oh * g.out_w + ow] * win.inv_count<T>(g, oh, ow);
        for (int64_t h = win.h.lo[oh]; h < win.h.hi[oh]; ++h) {
          for (int64_t w = win.w.lo[ow]; w < win.w.hi[ow]; ++w) gxp[h * g.in_w + w] += v;
        }
      }
    }
  }
}

template <class Fn>
void dispatch(const Tensor& t, Fn&& fn) {
  if (t.dtype() == DType::f64) {
    fn(double{});
  } else {
    check_internal(t.dtype() == DType::f32, "pool kernel on ", t.desc());
    fn(float{});
  }
}

}  // namespace

void max_pool2d(const Tensor& x, const Tensor& y, const Tensor& indices, const PoolGeometry& g) {
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    max_pool_impl<T>(x.data<T>(), y.data<T>(), indices.data<int64_t>(), g);
  });
}

void max_pool2d_scatter(const Tensor& gy, const Tensor& indices, const Tensor& gx,
                        const PoolGeometry& g) {
  dispatch(gy, [&](auto tag) {
    using T = decltype(tag);
    scatter_impl<T>(gy.data<T>(), indices.data<int64_t>(), gx.data<T>(), g);
  });
}

void max_pool2d_gather(const Tensor& x, const Tensor& indices, const Tensor& y,
                       const PoolGeometry& g) {
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    gather_impl<T>(x.data<T>(), indices.data<int64_t>(), y.data<T>(), g);
  });
}

void avg_pool2d(const Tensor& x, const Tensor& y, const PoolGeometry& g) {
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    avg_pool_impl<T>(x.data<T>(), y.data<T>(), g);
  });
}

void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeometry& g) {
  dispatch(gy, [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_impl<T>(gy.data<T>(), gx.data<T>(), g);
  });
}

}  // namespace strata::cpu
