// Softmax, log_softmax and logsumexp on the GPU. Rows (inner == 1) get one block each with
// warp-shuffle reductions; strided columns (inner > 1) get one thread each walking n, whose
// loads are coalesced across neighbouring columns.
#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/softmax.h"

namespace strata::cuda {
namespace {

/// One block per row of n: y = softmax/log_softmax (y may be null), lse[row] when lse set.
template <class T>
__global__ void softmax_rows(const T* x, T* y, T* lse, int64_t rows, int64_t n, bool log) {
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T m = -inf;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = Max{}(m, xr[i]);
    m = block_reduce(m, Max{}, -inf);
    T s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += dexp(xr[i] - m);
    s = block_reduce(s, Sum{}, T(0));
    const T l = m + ::log(s);
    if (lse && threadIdx.x == 0) lse[r] = l;
    if (!y) continue;
    T* yr = y + r * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      yr[i] = log ? xr[i] - l : dexp(xr[i] - l);
    }
  }
}

/// One thread per (outer, column) of an (outer, n, inner) tensor.
template <class T>
__global__ void softmax_cols(const T* x, T* y, T* lse, int64_t outer, int64_t n, int64_t inner,
                             bool log) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < outer * inner; t += step) {
    const int64_t o = t / inner, c = t % inner, base = o * n * inner + c;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < n; ++i) m = Max{}(m, x[base + i * inner]);
    T s = 0;
    for (int64_t i = 0; i < n; ++i) s += dexp(x[base + i * inner] - m);
    const T l = m + ::log(s);
    if (lse) lse[t] = l;
    if (!y) continue;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      y[k] = log ? x[k] - l : dexp(x[k] - l);
    }
  }
}

template <class T>
__global__ void softmax_backward_rows(const T* g, const T* y, T* gx, int64_t rows, int64_t n,
                                      bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *gr = g + r * n, *yr = y + r * n;
    T acc = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += log ? gr[i] : gr[i] * yr[i];
    acc = block_reduce(acc, Sum{}, T(0));
    T* o = gx + r * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      o[i] = log ? gr[i] - dexp(yr[i]) * acc : yr[i] * (gr[i] - acc);
    }
  }
}

template <class T>
__global__ void softmax_backward_cols(const T* g, const T* y, T* gx, int64_t outer, int64_t n,
                                      int64_t inner, bool log) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < outer * inner; t += step) {
    const int64_t base = (t / inner) * n * inner + t % inner;
    T acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      acc += log ? g[k] : g[k] * y[k];
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = base + i * inner;
      gx[k] = log ? g[k] - dexp(y[k]) * acc : y[k] * (g[k] - acc);
    }
  }
}

unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, 65535)); }

template <class T>
void run_forward(const Tensor& x, T* y, T* lse, int64_t outer, int64_t n, int64_t inner, bool log) {
  // n == 0 still writes lse = -inf (max -inf, log(0)) as the CPU does; only no rows is a no-op.
  if (outer * inner == 0) return;
  cudaStream_t stream = stream_for(x.device());
  const T* xp = cptr<T>(x);
  if (inner == 1) {
    softmax_rows<T><<<row_grid(outer), kThreads, 0, stream>>>(xp, y, lse, outer, n, log);
  } else {
    softmax_cols<T>
        <<<blocks_for(outer * inner), kThreads, 0, stream>>>(xp, y, lse, outer, n, inner, log);
  }
  STRATA_CUDA_CHECK_LAUNCH("softmax");
}

}  // namespace

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log) {
  visit_floating(x, "softmax", [&](auto tag) {
    using T = decltype(tag);
    run_forward<T>(x, mptr<T>(y), nullptr, outer, n, inner, log);
  });
}

void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t n,
                      int64_t inner, bool log) {
  if (outer * n * inner == 0) return;
  visit_floating(g, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    cudaStream_t stream = stream_for(g.device());
    if (inner == 1) {
      softmax_backward_rows<T><<<row_grid(outer), kThreads, 0, stream>>>(
          cptr<T>(g), cptr<T>(y), mptr<T>(gx), outer, n, log);
    } else {
      softmax_backward_cols<T><<<blocks_for(outer * inner), kThreads, 0, stream>>>(
          cptr<T>(g), cptr<T>(y), mptr<T>(gx), outer, n, inner, log);
    }
    STRATA_CUDA_CHECK_LAUNCH("softmax_backward");
  });
}

void logsumexp(const Tensor& x, const Tensor& out, int64_t outer, int64_t n, int64_t inner) {
  visit_floating(x, "logsumexp", [&](auto tag) {
    using T = decltype(tag);
    run_forward<T>(x, nullptr, mptr<T>(out), outer, n, inner, false);
  });
}

}  // namespace strata::cuda
