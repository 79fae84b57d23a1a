// Masked softmax for attention: masked keys become -inf before a stable softmax, so they get
// exactly 0, and rows with nothing to attend to are written as 0 instead of 0/0.
#include "core/backend/cpu/attention.h"

#include <algorithm>
#include <limits>

#include "core/backend/cpu/fast_exp.h"
#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

/// One query row: s (Tk) scores, m the mask row (stride sk) or null, keys [0, limit) allowed.
template <class T>
void masked_row(const T* s, const bool* m, int64_t sk, int64_t limit, int64_t Tk, T scale, T* y) {
  const T ninf = -std::numeric_limits<T>::infinity();
  if (m) {
    for (int64_t j = 0; j < limit; ++j) y[j] = m[j * sk] ? scale * s[j] : ninf;
  } else {
#pragma omp simd
    for (int64_t j = 0; j < limit; ++j) y[j] = scale * s[j];
  }
  std::fill(y + limit, y + Tk, T(0));
  T mx = ninf;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < limit; ++j) mx = std::max(mx, y[j]);
  if (mx == ninf) {
    std::fill(y, y + limit, T(0));  // nothing to attend to: a documented 0, not NaN
    return;
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < limit; ++j) {
    T e = fast_exp(y[j] - mx);
    y[j] = e;
    sum += e;
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t j = 0; j < limit; ++j) y[j] *= inv;
}

template <class T>
void masked_softmax_typed(const Tensor& scores, const Tensor& mask, bool causal, double scale,
                          const Tensor& y) {
  const Shape& sh = scores.shape();
  const int64_t H = sh[1], Tq = sh[2], Tk = sh[3], rows = sh[0] * H * Tq;
  const T* sp = scores.data<T>();
  T* yp = y.data<T>();
  const bool* mp = mask.defined() ? mask.data<bool>() : nullptr;
  Shape ms = mask.defined() ? mask.strides() : Shape(4, 0);
#pragma omp parallel for if (rows * Tk >= kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r % Tq, h = (r / Tq) % H, b = r / (Tq * H);
    const bool* mrow = mp ? mp + b * ms[0] + h * ms[1] + i * ms[2] : nullptr;
    const int64_t limit = causal ? std::min(Tk, i + 1) : Tk;
    masked_row(sp + r * Tk, mrow, ms[3], limit, Tk, T(scale), yp + r * Tk);
  }
}

}  // namespace

void masked_softmax(const Tensor& scores, const Tensor& mask, bool causal, double scale,
                    const Tensor& y) {
  if (scores.dtype() == DType::f64) {
    masked_softmax_typed<double>(scores, mask, causal, scale, y);
  } else {
    check_internal(scores.dtype() == DType::f32, "masked_softmax on ", scores.desc());
    masked_softmax_typed<float>(scores, mask, causal, scale, y);
  }
}

}  // namespace strata::cpu
