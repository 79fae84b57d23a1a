// Layer norm on the GPU: one block per row for the statistics (two passes, f64 sums, as the
// CPU) and for the input gradient; weight and bias gradients sum over row chunks with one
// thread per column, then over the chunks in a fixed order. Batch norm: channel sums over
// (channel, sample slice) blocks in f64 (as the CPU), added per channel in a fixed order; bf16
// and f16 activations are read and written as they are, with f32 statistics and parameters.
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

// Batch norm: x is (N, C, S). Channel sums run on a (C, splits) grid, each block summing in
// f64 the elements of its channel in a slice of the samples; a second kernel adds each
// channel's `splits` partials in a fixed order (deterministic, no atomics). Element offsets
// use 32-bit division (checked), a fraction of the cost of 64-bit division on the GPU.

/// Element j of channel c's run within samples [n0, n1): its offset in x.
__device__ inline int64_t channel_offset(uint32_t j, uint32_t S, int64_t n0, int64_t C, int64_t c) {
  const uint32_t n = j / S;
  return ((n0 + n) * C + c) * S + (j - n * S);
}

/// The samples [n0, n1) of split k of `splits` over N.
__device__ inline void split_range(int64_t N, int64_t k, int64_t splits, int64_t& n0, int64_t& n1) {
  n0 = N * k / splits;
  n1 = N * (k + 1) / splits;
}

/// part[c * splits + k] = sum over the block's slice of x (center == null) or of
/// (x - center[c])^2, in f64.
template <class T>
__global__ void channel_partial_kernel(const T* x, const double* center, double* part, int64_t N,
                                       int64_t C, int64_t S) {
  const int64_t c = blockIdx.x, k = blockIdx.y, splits = gridDim.y;
  int64_t n0, n1;
  split_range(N, k, splits, n0, n1);
  const uint32_t count = static_cast<uint32_t>((n1 - n0) * S);
  const double m = center ? center[c] : 0.0;
  double acc = 0;
  for (uint32_t j = threadIdx.x; j < count; j += blockDim.x) {
    const double v = convert<double>(x[channel_offset(j, static_cast<uint32_t>(S), n0, C, c)]);
    acc += center ? (v - m) * (v - m) : v;
  }
  acc = block_reduce(acc, Sum{}, 0.0);
  if (threadIdx.x == 0) part[c * splits + k] = acc;
}

/// out[c] = (sum of channel c's partials, in order) / M, as f64 (and as T when out_t is set).
template <class T>
__global__ void channel_finish_kernel(const double* part, int64_t splits, int64_t C, double M,
                                      double* out, T* out_t) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C;
       c += int64_t(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int64_t k = 0; k < splits; ++k) s += part[c * splits + k];
    out[c] = s / M;
    if (out_t) out_t[c] = T(s / M);
  }
}

/// y = x * scale[c] + shift[c], the statistics and the affine folded as on the CPU. T is the
/// element type of x and out, P that of the statistics and parameters (f32 for bf16/f16 x).
template <class T, class P>
__global__ void channel_norm_kernel(const T* x, const P* mean, const P* rstd, const P* w,
                                    const P* b, T* out, int64_t n, int64_t C, int64_t S) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    // n < 2^32 (checked at launch): 32-bit division.
    const int64_t c =
        (static_cast<uint32_t>(i) / static_cast<uint32_t>(S)) % static_cast<uint32_t>(C);
    const P scale = rstd[c] * (w ? w[c] : P(1));
    const P shift = (b ? b[c] : P(0)) - mean[c] * scale;
    out[i] = convert<T>(convert<P>(x[i]) * scale + shift);
  }
}

/// part[(c * splits + k) * 2 + {0, 1}] = sums of g and of g * xhat over the block's slice.
template <class T, class P>
__global__ void channel_grad_partial_kernel(const T* g, const T* x, const P* mean, const P* rstd,
                                            double* part, int64_t N, int64_t C, int64_t S) {
  const int64_t c = blockIdx.x, k = blockIdx.y, splits = gridDim.y;
  int64_t n0, n1;
  split_range(N, k, splits, n0, n1);
  const uint32_t count = static_cast<uint32_t>((n1 - n0) * S);
  const P mu = mean[c], rs = rstd[c];
  double sg = 0, sgx = 0;
  for (uint32_t j = threadIdx.x; j < count; j += blockDim.x) {
    const int64_t at = channel_offset(j, static_cast<uint32_t>(S), n0, C, c);
    const P gv = convert<P>(g[at]);
    sg += gv;
    sgx += gv * (convert<P>(x[at]) - mu) * rs;
  }
  sg = block_reduce(sg, Sum{}, 0.0);
  sgx = block_reduce(sgx, Sum{}, 0.0);
  if (threadIdx.x == 0) {
    part[(c * splits + k) * 2] = sg;
    part[(c * splits + k) * 2 + 1] = sgx;
  }
}

/// Per channel, the partials in order: gw = sum(g * xhat), gb = sum(g) (each optional), and
/// coef[c] = (sum(g) / M, sum(g * xhat) / M) for the input gradient.
template <class T>
__global__ void channel_grad_finish_kernel(const double* part, int64_t splits, int64_t C, double M,
                                           T* gw, T* gb, double* coef) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C;
       c += int64_t(gridDim.x) * blockDim.x) {
    double sg = 0, sgx = 0;
    for (int64_t k = 0; k < splits; ++k) {
      sg += part[(c * splits + k) * 2];
      sgx += part[(c * splits + k) * 2 + 1];
    }
    if (gw) gw[c] = T(sgx);
    if (gb) gb[c] = T(sg);
    coef[c * 2] = sg / M;
    coef[c * 2 + 1] = sgx / M;
  }
}

/// gx = rstd * w * (g - mean(g) - xhat * mean(g * xhat)), element-wise.
template <class T, class P>
__global__ void channel_input_grad_kernel(const T* g, const T* x, const P* mean, const P* rstd,
                                          const P* w, const double* coef, T* gx, int64_t n,
                                          int64_t C, int64_t S) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t c =
        (static_cast<uint32_t>(i) / static_cast<uint32_t>(S)) % static_cast<uint32_t>(C);
    const P mu = mean[c], rs = rstd[c];
    const P k = rs * (w ? w[c] : P(1)), c1 = P(coef[c * 2]), c2 = P(coef[c * 2 + 1]);
    gx[i] = convert<T>(k * (convert<P>(g[i]) - c1 - (convert<P>(x[i]) - mu) * rs * c2));
  }
}

/// Splits of the samples so that C x splits blocks fill the GPU (a few per SM).
int64_t channel_splits(int64_t N, int64_t C) {
  return std::clamp<int64_t>((1024 + C - 1) / std::max<int64_t>(C, 1), 1, std::max<int64_t>(N, 1));
}

/// The 32-bit index arithmetic's limit: every tensor and slice below 2^32 elements.
void check_channel_sizes(const Tensor& x) {
  check(x.numel() < (int64_t(1) << 32), "[batch_norm] ", x.desc(),
        " has 2^32 elements or more, beyond the CUDA kernels' 32-bit indexing; split the batch");
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
  check_channel_sizes(x);
  const int64_t splits = channel_splits(N, C);
  cudaStream_t stream = stream_for(x.device());
  Tensor part = empty({C * splits}, DType::f64, x.device());
  Tensor center = empty({C}, DType::f64, x.device()), scratch = empty({C}, DType::f64, x.device());
  const double M = double(N * S);
  const dim3 grid(static_cast<unsigned>(C), static_cast<unsigned>(splits));
  visit_storage(x, mean, "channel_stats", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    // Two passes as on the CPU: the mean, then the mean squared deviation from it.
    for (bool second : {false, true}) {
      channel_partial_kernel<T><<<grid, kThreads, 0, stream>>>(
          cptr<T>(x), second ? mptr<double>(center) : nullptr, mptr<double>(part), N, C, S);
      STRATA_CUDA_CHECK_LAUNCH("channel_partial");
      channel_finish_kernel<P><<<blocks_for(C), kThreads, 0, stream>>>(
          mptr<double>(part), splits, C, M, mptr<double>(second ? scratch : center),
          mptr<P>(second ? var : mean));
      STRATA_CUDA_CHECK_LAUNCH("channel_finish");
    }
  });
}

void channel_norm(const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                  const Tensor& b, const Tensor& out) {
  const int64_t n = x.numel(), C = x.shape()[1], S = x.shape()[2];
  if (n == 0) return;
  check_channel_sizes(x);
  visit_storage(x, mean, "channel_norm", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    channel_norm_kernel<T, P><<<blocks_for(n), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), cptr<P>(mean), cptr<P>(rstd), cptr<P>(w), cptr<P>(b), mptr<T>(out), n, C, S);
    STRATA_CUDA_CHECK_LAUNCH("channel_norm");
  });
}

void channel_norm_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                           const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  const int64_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2];
  if (C == 0) return;
  check_channel_sizes(x);
  const int64_t splits = channel_splits(N, C);
  cudaStream_t stream = stream_for(x.device());
  Tensor part = empty({C * splits * 2}, DType::f64, x.device());
  Tensor coef = empty({C * 2}, DType::f64, x.device());
  const dim3 grid(static_cast<unsigned>(C), static_cast<unsigned>(splits));
  visit_storage(x, mean, "channel_norm_backward", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    channel_grad_partial_kernel<T, P><<<grid, kThreads, 0, stream>>>(
        cptr<T>(g), cptr<T>(x), cptr<P>(mean), cptr<P>(rstd), mptr<double>(part), N, C, S);
    STRATA_CUDA_CHECK_LAUNCH("channel_grad_partial");
    channel_grad_finish_kernel<P><<<blocks_for(C), kThreads, 0, stream>>>(
        mptr<double>(part), splits, C, double(N * S), mptr<P>(gw), mptr<P>(gb), mptr<double>(coef));
    STRATA_CUDA_CHECK_LAUNCH("channel_grad_finish");
    if (gx.defined() && x.numel() > 0) {
      channel_input_grad_kernel<T, P><<<blocks_for(x.numel()), kThreads, 0, stream>>>(
          cptr<T>(g), cptr<T>(x), cptr<P>(mean), cptr<P>(rstd), cptr<P>(w), mptr<double>(coef),
          mptr<T>(gx), x.numel(), C, S);
      STRATA_CUDA_CHECK_LAUNCH("channel_input_grad");
    }
  });
}

}  // namespace strata::cuda
