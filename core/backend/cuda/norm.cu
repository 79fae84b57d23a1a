// Layer norm on the GPU: one block per row for the statistics (two passes, f64 sums, as the
// CPU) and for the input gradient; weight and bias gradients sum over row chunks with one
// thread per column, then over the chunks in a fixed order.
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

}  // namespace strata::cuda
