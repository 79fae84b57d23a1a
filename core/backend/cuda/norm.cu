// Layer norm on the GPU: one block per row for the statistics (two passes, f64 sums, as the
// CPU) and for the input gradient; weight and bias gradients sum over row chunks with one
// thread per column, then over the chunks in a fixed order. Batch norm: one block per channel
// sums its N runs of S elements (f64, as the CPU), then writes that channel's gradients.
#include <algorithm>

#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/norm.h"

namespace strata::cuda {
namespace {

template <class T>
__global__ void layer_norm_rows(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd,
                                int64_t R, int64_t L, double eps) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* xr = x + r * L;
    double s = 0;
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) s += double(xr[l]);
    const double m = L > 0 ? block_reduce(s, Sum{}, 0.0) / L : 0.0;
    double q = 0;
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) q += (xr[l] - m) * (xr[l] - m);
    const double v = L > 0 ? block_reduce(q, Sum{}, 0.0) / L : 0.0;
    const T mu = T(m), rs = T(1.0 / ::sqrt(v + eps));
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    T* yr = out + r * L;
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
      T y = (xr[l] - mu) * rs;
      if (w) y = y * w[l];
      yr[l] = b ? y + b[l] : y;
    }
  }
}

template <class T>
__global__ void layer_norm_backward_rows(const T* g, const T* x, const T* mean, const T* rstd,
                                         const T* w, T* gx, int64_t R, int64_t L) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T *gr = g + r * L, *xr = x + r * L;
    const T mu = mean[r], rs = rstd[r];
    double s1 = 0, s2 = 0;  // sum(gxhat), sum(gxhat * xhat)
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
      T gh = w ? gr[l] * w[l] : gr[l];
      s1 += gh;
      s2 += gh * (xr[l] - mu) * rs;
    }
    const T c1 = T(block_reduce(s1, Sum{}, 0.0) / L), c2 = T(block_reduce(s2, Sum{}, 0.0) / L);
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
      T xh = (xr[l] - mu) * rs;
      T gh = w ? gr[l] * w[l] : gr[l];
      gx[r * L + l] = rs * (gh - c1 - xh * c2);
    }
  }
}

/// Partial weight and bias gradients of rows [y * chunk, (y + 1) * chunk), one thread per
/// column (coalesced across columns): part[y][l] = (sum g * xhat, sum g) in f64.
template <class T>
__global__ void layer_norm_param_partial(const T* g, const T* x, const T* mean, const T* rstd,
                                         double2* part, int64_t R, int64_t L, int64_t chunk) {
  const int64_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < L; l += step) {
    double sw = 0, sb = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const T gv = g[r * L + l];
      sw += gv * (x[r * L + l] - mean[r]) * rstd[r];
      sb += gv;
    }
    part[blockIdx.y * L + l] = make_double2(sw, sb);
  }
}

/// Sums the partials in split order (deterministic) into gw and gb (either may be null).
template <class T>
__global__ void layer_norm_param_finish(const double2* part, int64_t splits, int64_t L, T* gw,
                                        T* gb) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < L; l += step) {
    double sw = 0, sb = 0;
    for (int64_t s = 0; s < splits; ++s) {
      sw += part[s * L + l].x;
      sb += part[s * L + l].y;
    }
    if (gw) gw[l] = T(sw);
    if (gb) gb[l] = T(sb);
  }
}

/// Mean and biased variance of each channel of x (N, C, S), two passes in f64.
template <class T>
__global__ void channel_stats_kernel(const T* x, T* mean, T* var, int64_t N, int64_t C, int64_t S) {
  const int64_t M = N * S;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x)
      s += double(x[(i / S * C + c) * S + i % S]);
    const double m = block_reduce(s, Sum{}, 0.0) / double(M);
    double q = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
      const double d = double(x[(i / S * C + c) * S + i % S]) - m;
      q += d * d;
    }
    const double v = block_reduce(q, Sum{}, 0.0) / double(M);
    if (threadIdx.x == 0) {
      mean[c] = T(m);
      var[c] = T(v);
    }
  }
}

/// y = x * scale[c] + shift[c], the statistics and the affine folded as on the CPU.
template <class T>
__global__ void channel_norm_kernel(const T* x, const T* mean, const T* rstd, const T* w,
                                    const T* b, T* out, int64_t n, int64_t C, int64_t S) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t c = i / S % C;
    const T scale = rstd[c] * (w ? w[c] : T(1));
    const T shift = (b ? b[c] : T(0)) - mean[c] * scale;
    out[i] = x[i] * scale + shift;
  }
}

/// Per channel: gw = sum(g * xhat), gb = sum(g), then gx (each optional).
template <class T>
__global__ void channel_norm_backward_kernel(const T* g, const T* x, const T* mean, const T* rstd,
                                             const T* w, T* gx, T* gw, T* gb, int64_t N, int64_t C,
                                             int64_t S) {
  const int64_t M = N * S;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const T mu = mean[c], rs = rstd[c];
    double sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
      const int64_t at = (i / S * C + c) * S + i % S;
      sg += g[at];
      sgx += g[at] * (x[at] - mu) * rs;
    }
    sg = block_reduce(sg, Sum{}, 0.0);
    sgx = block_reduce(sgx, Sum{}, 0.0);
    if (threadIdx.x == 0) {
      if (gw) gw[c] = T(sgx);
      if (gb) gb[c] = T(sg);
    }
    if (!gx) continue;
    const T k = rs * (w ? w[c] : T(1)), c1 = T(sg / double(M)), c2 = T(sgx / double(M));
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
      const int64_t at = (i / S * C + c) * S + i % S;
      gx[at] = k * (g[at] - c1 - (x[at] - mu) * rs * c2);
    }
  }
}

unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, 65535)); }

}  // namespace

void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out,
                const Tensor& mean, const Tensor& rstd, double eps) {
  const int64_t R = x.shape()[0], L = x.shape()[1];
  if (R == 0) return;
  visit_floating(x, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_rows<T><<<row_grid(R), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), cptr<T>(w), cptr<T>(b), mptr<T>(out), mptr<T>(mean), mptr<T>(rstd), R, L, eps);
    STRATA_CUDA_CHECK_LAUNCH("layer_norm");
  });
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  const int64_t R = x.shape()[0], L = x.shape()[1];
  visit_floating(x, "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    cudaStream_t stream = stream_for(x.device());
    if (R > 0) {
      layer_norm_backward_rows<T><<<row_grid(R), kThreads, 0, stream>>>(
          cptr<T>(g), cptr<T>(x), cptr<T>(mean), cptr<T>(rstd), cptr<T>(w), mptr<T>(gx), R, L);
      STRATA_CUDA_CHECK_LAUNCH("layer_norm_backward");
    }
    if (R == 0) {  // empty sums
      if (gw.defined()) fill(gw, 0.0);
      if (gb.defined()) fill(gb, 0.0);
    } else if ((gw.defined() || gb.defined()) && L > 0) {
      // Rows split over grid.y so that short rows (L ~ 768) still fill the GPU.
      const int64_t splits =
          std::clamp<int64_t>(std::min<int64_t>((R + 31) / 32, (1 << 18) / L), 1, 256);
      const int64_t chunk = (R + splits - 1) / splits;
      Tensor part = empty({splits * L * 2}, DType::f64, x.device());
      dim3 grid(blocks_for(L),
                static_cast<unsigned>(std::max<int64_t>((R + chunk - 1) / chunk, 1)));
      double2* pp = static_cast<double2*>(part.raw_data());
      layer_norm_param_partial<T><<<grid, kThreads, 0, stream>>>(
          cptr<T>(g), cptr<T>(x), cptr<T>(mean), cptr<T>(rstd), pp, R, L, chunk);
      STRATA_CUDA_CHECK_LAUNCH("layer_norm_param_partial");
      layer_norm_param_finish<T><<<blocks_for(L), kThreads, 0, stream>>>(pp, int64_t(grid.y), L,
                                                                         mptr<T>(gw), mptr<T>(gb));
      STRATA_CUDA_CHECK_LAUNCH("layer_norm_param_finish");
    }
  });
}

void channel_stats(const Tensor& x, const Tensor& mean, const Tensor& var) {
  const int64_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2];
  if (C == 0) return;
  visit_floating(x, "channel_stats", [&](auto tag) {
    using T = decltype(tag);
    channel_stats_kernel<T><<<row_grid(C), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), mptr<T>(mean), mptr<T>(var), N, C, S);
    STRATA_CUDA_CHECK_LAUNCH("channel_stats");
  });
}

void channel_norm(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                  const Tensor& b, const Tensor& out) {
  const int64_t n = x.numel(), C = x.shape()[1], S = x.shape()[2];
  if (n == 0) return;
  visit_floating(x, "channel_norm", [&](auto tag) {
    using T = decltype(tag);
    channel_norm_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), cptr<T>(mean), cptr<T>(rstd), cptr<T>(w), cptr<T>(b), mptr<T>(out), n, C, S);
    STRATA_CUDA_CHECK_LAUNCH("channel_norm");
  });
}

void channel_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                           const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  const int64_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2];
  if (C == 0) return;
  visit_floating(x, "channel_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    channel_norm_backward_kernel<T><<<row_grid(C), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(g), cptr<T>(x), cptr<T>(mean), cptr<T>(rstd), cptr<T>(w), mptr<T>(gx), mptr<T>(gw),
        mptr<T>(gb), N, C, S);
    STRATA_CUDA_CHECK_LAUNCH("channel_norm_backward");
  });
}

}  // namespace strata::cuda
