// Normalisation kernels. Rows (layer_norm) are independent and split across threads; the
// weight and bias gradients sum over rows through per-thread partials. Channels
// (batch_norm) are split across threads, each sweeping its N runs of S elements.
#include "core/backend/cpu/norm.h"

#include <cmath>
#include <vector>

#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* mut_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

/// Mean and biased variance of n values, two-pass in f64.
template <class T>
void moments(const T* x, int64_t n, double& mean, double& var) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  mean = n > 0 ? s / n : 0.0;
  double q = 0;
  const double m = mean;
#pragma omp simd reduction(+ : q)
  for (int64_t i = 0; i < n; ++i) q += (x[i] - m) * (x[i] - m);
  var = n > 0 ? q / n : 0.0;
}

template <class T>
void layer_norm_typed(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out,
                      const Tensor& mean, const Tensor& rstd, double eps) {
  const int64_t R = x.shape()[0], L = x.shape()[1];
  const T* xp = x.data<T>();
  const T *wp = ptr_or_null<T>(w), *bp = ptr_or_null<T>(b);
  T *op = out.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
#pragma omp parallel for if (R * L >= kParallelGrain) schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    double m, v;
    moments(xp + r * L, L, m, v);
    const T mu = T(m), rs = T(1.0 / std::sqrt(v + eps));
    mp[r] = mu;
    rp[r] = rs;
    const T* xr = xp + r * L;
    T* yr = op + r * L;
    if (wp && bp) {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) yr[l] = (xr[l] - mu) * rs * wp[l] + bp[l];
    } else if (wp) {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) yr[l] = (xr[l] - mu) * rs * wp[l];
    } else {
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) yr[l] = (xr[l] - mu) * rs + (bp ? bp[l] : T(0));
    }
  }
}

/// gx of one row; accumulates g * xhat and g into pw, pb (per-thread partials) when set.
template <class T>
void layer_norm_backward_row(const T* g, const T* x, T mu, T rs, const T* w, T* gx, int64_t L,
                             double* pw, double* pb) {
  double s1 = 0, s2 = 0;  // sum(gxhat), sum(gxhat * xhat)
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t l = 0; l < L; ++l) {
    T gh = w ? g[l] * w[l] : g[l];
    s1 += gh;
    s2 += gh * (x[l] - mu) * rs;
  }
  const T c1 = T(s1 / L), c2 = T(s2 / L);
#pragma omp simd
  for (int64_t l = 0; l < L; ++l) {
    T xh = (x[l] - mu) * rs;
    T gh = w ? g[l] * w[l] : g[l];
    gx[l] = rs * (gh - c1 - xh * c2);
  }
  if (pw) {
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) pw[l] += g[l] * (x[l] - mu) * rs;
  }
  if (pb) {
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) pb[l] += g[l];
  }
}

template <class T>
void layer_norm_backward_typed(const Tensor& g, const Tensor& x, const Tensor& mean,
                               const Tensor& rstd, const Tensor& w, const Tensor& gx,
                               const Tensor& gw, const Tensor& gb) {
  const int64_t R = x.shape()[0], L = x.shape()[1];
  const T *gp = g.data<T>(), *xp = x.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
  const T* wp = ptr_or_null<T>(w);
  T* gxp = gx.data<T>();
  const bool parallel = R * L >= kParallelGrain;
  const int nt = parallel ? omp_get_max_threads() : 1;
  std::vector<double> pw(gw.defined() ? nt * L : 0, 0.0), pb(gb.defined() ? nt * L : 0, 0.0);
#pragma omp parallel num_threads(nt) if (parallel)
  {
    const int t = omp_get_thread_num();
    double* tw = gw.defined() ? pw.data() + t * L : nullptr;
    double* tb = gb.defined() ? pb.data() + t * L : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      layer_norm_backward_row(gp + r * L, xp + r * L, mp[r], rp[r], wp, gxp + r * L, L, tw, tb);
    }
  }
  auto finish = [&](const std::vector<double>& part, const Tensor& dst) {
    if (!dst.defined()) return;
    T* d = dst.data<T>();
    for (int64_t l = 0; l < L; ++l) {
      double s = 0;
      for (int t = 0; t < nt; ++t) s += part[t * L + l];
      d[l] = T(s);
    }
  };
  finish(pw, gw);
  finish(pb, gb);
}

template <class F>
void for_floating(const Tensor& t, F&& f) {
  if (t.dtype() == DType::f64) {
    f(double{});
  } else {
    check_internal(t.dtype() == DType::f32, "norm kernel on ", t.desc());
    f(float{});
  }
}

}  // namespace

void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out,
                const Tensor& mean, const Tensor& rstd, double eps) {
  for_floating(x,
               [&](auto tag) { layer_norm_typed<decltype(tag)>(x, w, b, out, mean, rstd, eps); });
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  for_floating(x, [&](auto tag) {
    layer_norm_backward_typed<decltype(tag)>(g, x, mean, rstd, w, gx, gw, gb);
  });
}

void channel_stats(const Tensor& x, const Tensor& mean, const Tensor& var) {
  const int64_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2];
  for_floating(x, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T *mp = mean.data<T>(), *vp = var.data<T>();
#pragma omp parallel for if (N * C * S >= kParallelGrain) schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* run = xp + (n * C + c) * S;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < S; ++i) s += run[i];
      }
      const double m = s / double(N * S);
      double q = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* run = xp + (n * C + c) * S;
#pragma omp simd reduction(+ : q)
        for (int64_t i = 0; i < S; ++i) q += (run[i] - m) * (run[i] - m);
      }
      mp[c] = T(m);
      vp[c] = T(q / double(N * S));
    }
  });
}

void channel_norm(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                  const Tensor& b, const Tensor& out) {
  const int64_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2];
  for_floating(x, [&](auto tag) {
    using T = decltype(tag);
    const T *xp = x.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
    const T *wp = ptr_or_null<T>(w), *bp = ptr_or_null<T>(b);
    T* op = out.data<T>();
#pragma omp parallel for if (N * C * S >= kParallelGrain) schedule(static)
    for (int64_t t = 0; t < N * C; ++t) {
      const int64_t c = t % C;
      // y = x * scale + shift folds the statistics and the affine into one FMA.
      const T scale = rp[c] * (wp ? wp[c] : T(1));
      const T shift = (bp ? bp[c] : T(0)) - mp[c] * scale;
      const T* xr = xp + t * S;
      T* yr = op + t * S;
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) yr[i] = xr[i] * scale + shift;
    }
  });
}

void channel_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                           const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  const int64_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2];
  for_floating(x, [&](auto tag) {
    using T = decltype(tag);
    const T *gp = g.data<T>(), *xp = x.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
    const T* wp = ptr_or_null<T>(w);
    T *gxp = gx.defined() ? gx.data<T>() : nullptr, *gwp = mut_or_null<T>(gw);
    T* gbp = mut_or_null<T>(gb);
    const double M = double(N * S);
#pragma omp parallel for if (N * C * S >= kParallelGrain) schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      const T mu = mp[c], rs = rp[c];
      double sg = 0, sgx = 0;  // sum(g), sum(g * xhat)
      for (int64_t n = 0; n < N; ++n) {
        const T *gr = gp + (n * C + c) * S, *xr = xp + (n * C + c) * S;
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t i = 0; i < S; ++i) {
          sg += gr[i];
          sgx += gr[i] * (xr[i] - mu) * rs;
        }
      }
      if (gwp) gwp[c] = T(sgx);
      if (gbp) gbp[c] = T(sg);
      if (!gxp) continue;
      const T k = rs * (wp ? wp[c] : T(1)), c1 = T(sg / M), c2 = T(sgx / M);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * S;
#pragma omp simd
        for (int64_t i = 0; i < S; ++i) {
          gxp[base + i] = k * (gp[base + i] - c1 - (xp[base + i] - mu) * rs * c2);
        }
      }
    }
  });
}

}  // namespace strata::cpu
