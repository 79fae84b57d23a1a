// Fused cross-entropy on the GPU: one block per row, forward (max, then exp-sum and x-sum
// together) and backward (softmax minus the smoothed one-hot), as cpu/loss.cpp; bf16/f16
// logits are read as they are and the losses kept in f32.
#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/loss.h"

namespace strata::cuda {
namespace {

/// T: the logits' element type; P: the type the row sums and the losses are computed and kept
/// in (T, or f32 for bf16/f16 logits, which are read as they are: no f32 copy of the logits).
template <class T, class P>
__global__ void cross_entropy_rows(const T* x, const int64_t* target, P* loss, P* lse, int64_t M,
                                   int64_t C, int64_t ignore, double smoothing) {
  const P inf = std::numeric_limits<P>::infinity();
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const T* xr = x + i * C;
    P m = -inf;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = Max{}(m, convert<P>(xr[c]));
    m = block_reduce(m, Max{}, -inf);
    P s = 0, sx = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const P v = convert<P>(xr[c]);
      s += dexp(v - m);
      sx += v;
    }
    s = block_reduce(s, Sum{}, P(0));
    sx = block_reduce(sx, Sum{}, P(0));
    if (threadIdx.x != 0) continue;
    const P l = m + ::log(s);
    lse[i] = l;
    const int64_t t = target[i];
    if (t == ignore) {
      loss[i] = P(0);
      continue;
    }
    const P nll = l - convert<P>(xr[t]);
    loss[i] = smoothing > 0 ? P((1 - smoothing) * nll + smoothing / C * (C * l - sx)) : nll;
  }
}

template <class T, class P>
__global__ void cross_entropy_backward_rows(const T* x, const int64_t* target, const P* lse,
                                            const P* grow, int64_t gs, T* gx, int64_t M, int64_t C,
                                            int64_t ignore, double smoothing) {
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    T* o = gx + i * C;
    const int64_t t = target[i];
    const T* xr = x + i * C;
    const P g = grow[i * gs], l = lse[i], off = P(smoothing / C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      if (t == ignore) {
        o[c] = convert<T>(P(0));
      } else {
        P v = g * (dexp(convert<P>(xr[c]) - l) - off);
        o[c] = convert<T>(c == t ? v - g * P(1 - smoothing) : v);
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
  visit_storage(logits, loss, "cross_entropy", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    cross_entropy_rows<T, P><<<row_grid(M), kThreads, 0, stream_for(logits.device())>>>(
        cptr<T>(logits), cptr<int64_t>(target), mptr<P>(loss), mptr<P>(lse), M, C, ignore_index,
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
  visit_storage(logits, lse, "cross_entropy_backward", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    check_internal(grow.dtype() == lse.dtype() && gx.dtype() == logits.dtype(),
                   "cross_entropy_backward: gradient ", grow.desc(), " into ", gx.desc());
    cross_entropy_backward_rows<T, P><<<row_grid(M), kThreads, 0, stream_for(logits.device())>>>(
        cptr<T>(logits), cptr<int64_t>(target), cptr<P>(lse), cptr<P>(grow), gs, mptr<T>(gx), M, C,
        ignore_index, smoothing);
    STRATA_CUDA_CHECK_LAUNCH("cross_entropy_backward");
  });
}

}  // namespace strata::cuda
