// Fused cross-entropy: one thread per block of rows, each row read twice forward (max, then
// the exp-sum and the smoothing sum together) and once backward.
#include "core/backend/cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/backend/cpu/fast_exp.h"
#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

template <class T>
void forward_typed(const Tensor& logits, const Tensor& target, const Tensor& loss,
                   const Tensor& lse, int64_t ignore, double smoothing) {
  const int64_t M = logits.size(0), C = logits.size(1);
  const T* xp = logits.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T *lp = loss.data<T>(), *sp = lse.data<T>();
#pragma omp parallel for if (M * C >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T* x = xp + i * C;
    T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; ++c) m = std::max(m, x[c]);
    T s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
    for (int64_t c = 0; c < C; ++c) {
      s += fast_exp(x[c] - m);
      sx += x[c];
    }
    const T l = m + std::log(s);
    sp[i] = l;
    const int64_t t = tp[i];
    if (t == ignore) {
      lp[i] = T(0);
      continue;
    }
    T nll = l - x[t];
    lp[i] = smoothing > 0 ? T((1 - smoothing) * nll + smoothing / C * (C * l - sx)) : nll;
  }
}

template <class T>
void backward_typed(const Tensor& logits, const Tensor& target, const Tensor& lse,
                    const Tensor& grow, const Tensor& gx, int64_t ignore, double smoothing) {
  const int64_t M = logits.size(0), C = logits.size(1);
  const T *xp = logits.data<T>(), *sp = lse.data<T>(), *gp = grow.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T* op = gx.data<T>();
  const int64_t gs = grow.numel() == 1 ? 0 : 1;  // a mean/sum reduction broadcasts one value
#pragma omp parallel for if (M * C >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    T* o = op + i * C;
    const int64_t t = tp[i];
    if (t == ignore) {
      std::fill(o, o + C, T(0));
      continue;
    }
    const T* x = xp + i * C;
    const T g = gp[i * gs], l = sp[i], off = T(smoothing / C);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = g * (fast_exp(x[c] - l) - off);
    o[t] -= g * T(1 - smoothing);
  }
}

template <class F>
void for_floating(const Tensor& t, F&& f) {
  if (t.dtype() == DType::f64) {
    f(double{});
  } else {
    check_internal(t.dtype() == DType::f32, "cross_entropy kernel on ", t.desc());
    f(float{});
  }
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& loss,
                   const Tensor& lse, int64_t ignore_index, double smoothing) {
  for_floating(logits, [&](auto tag) {
    forward_typed<decltype(tag)>(logits, target, loss, lse, ignore_index, smoothing);
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, const Tensor& gx, int64_t ignore_index,
                            double smoothing) {
  for_floating(logits, [&](auto tag) {
    backward_typed<decltype(tag)>(logits, target, lse, grow, gx, ignore_index, smoothing);
  });
}

}  // namespace strata::cpu
