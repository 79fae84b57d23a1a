// Fused cross-entropy on the GPU: one block per row, forward (max, then exp-sum and x-sum
// together) and backward (softmax minus the smoothed one-hot), as cpu/loss.cpp.
#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/loss.h"

namespace strata::cuda {
namespace {

template <class T>
__global__ void cross_entropy_rows(const T* x, const int64_t* target, T* loss, T* lse, int64_t M,
                                   int64_t C, int64_t ignore, double smoothing) {
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const T* xr = x + i * C;
    T m = -inf;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = Max{}(m, xr[c]);
    m = block_reduce(m, Max{}, -inf);
    T s = 0, sx = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      s += dexp(xr[c] - m);
      sx += xr[c];
    }
    s = block_reduce(s, Sum{}, T(0));
    sx = block_reduce(sx, Sum{}, T(0));
    if (threadIdx.x != 0) continue;
    const T l = m + ::log(s);
    lse[i] = l;
    const int64_t t = target[i];
    if (t == ignore) {
      loss[i] = T(0);
      continue;
    }
    const T nll = l - xr[t];
    loss[i] = smoothing > 0 ? T((1 - smoothing) * nll + smoothing / C * (C * l - sx)) : nll;
  }
}

template <class T>
__global__ void cross_entropy_backward_rows(const T* x, const int64_t* target, const T* lse,
                                            const T* grow, int64_t gs, T* gx, int64_t M, int64_t C,
                                            int64_t ignore, double smoothing) {
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    T* o = gx + i * C;
    const int64_t t = target[i];
    const T* xr = x + i * C;
    const T g = grow[i * gs], l = lse[i], off = T(smoothing / C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      if (t == ignore) {
        o[c] = T(0);
      } else {
        T v = g * (dexp(xr[c] - l) - off);
        o[c] = c == t ? v - g * T(1 - smoothing) : v;
      }
    }
  }
}

unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, 65535)); }

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& loss,
                   const Tensor& lse, int64_t ignore_index, double smoothing) {
  const int64_t M = logits.size(0), C = logits.size(1);
  if (M == 0) return;
  visit_floating(logits, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_rows<T><<<row_grid(M), kThreads, 0, stream_for(logits.device())>>>(
        cptr<T>(logits), cptr<int64_t>(target), mptr<T>(loss), mptr<T>(lse), M, C, ignore_index,
        smoothing);
    STRATA_CUDA_CHECK_LAUNCH("cross_entropy");
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, const Tensor& gx, int64_t ignore_index,
                            double smoothing) {
  const int64_t M = logits.size(0), C = logits.size(1);
  if (M == 0) return;
  const int64_t gs = grow.numel() == 1 ? 0 : 1;  // a mean/sum reduction broadcasts one value
  visit_floating(logits, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_backward_rows<T><<<row_grid(M), kThreads, 0, stream_for(logits.device())>>>(
        cptr<T>(logits), cptr<int64_t>(target), cptr<T>(lse), cptr<T>(grow), gs, mptr<T>(gx), M, C,
        ignore_index, smoothing);
    STRATA_CUDA_CHECK_LAUNCH("cross_entropy_backward");
  });
}

}  // namespace strata::cuda
