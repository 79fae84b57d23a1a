// Reductions as a [K, R] problem: the kept dims K and reduced dims R. Rows (R contiguous) are
// reduced by one thread each; columns (K contiguous) are swept with R outer so the inner loop
// stays unit-stride. Sums of f32 accumulate in f64.
#include "core/backend/cpu/reduce.h"

#include <limits>

#include "core/backend/cpu/copy.h"
#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

template <class T>
using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;

template <class T>
void reduce_rows(ReduceOp op, const T* x, int64_t K, int64_t R, int64_t sk, void* out) {
#pragma omp parallel for if (K * R >= kParallelGrain) schedule(static)
  for (int64_t k = 0; k < K; ++k) {
    const T* row = x + k * sk;
    if (op == ReduceOp::sum) {
      Acc<T> acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t r = 0; r < R; ++r) acc += row[r];
      static_cast<T*>(out)[k] = static_cast<T>(acc);
    } else if (op == ReduceOp::argmax) {
      int64_t best = 0;
      for (int64_t r = 1; r < R; ++r) {
        if (row[r] > row[best] || (row[r] != row[r] && row[best] == row[best])) best = r;
      }
      static_cast<int64_t*>(out)[k] = best;
    } else {
      T acc = row[0];
      bool is_max = op == ReduceOp::max;
      for (int64_t r = 1; r < R; ++r) {
        T v = row[r];
        if (v != v) {
          acc = v;
          break;
        }
        acc = is_max ? (v > acc ? v : acc) : (v < acc ? v : acc);
      }
      static_cast<T*>(out)[k] = acc;
    }
  }
}

template <class T>
void reduce_cols(ReduceOp op, const T* x, int64_t K, int64_t R, int64_t sr, T* out) {
  int64_t nt = K * R >= kParallelGrain ? omp_get_max_threads() : 1;
  int64_t chunk = std::max<int64_t>((K + nt - 1) / nt, 1);
#pragma omp parallel for if (nt > 1) schedule(static)
  for (int64_t k0 = 0; k0 < K; k0 += chunk) {
    int64_t k1 = std::min(K, k0 + chunk);
    std::vector<Acc<T>> acc(x + k0, x + k1);
    for (int64_t r = 1; r < R; ++r) {
      const T* row = x + r * sr;
      if (op == ReduceOp::sum) {
#pragma omp simd
        for (int64_t k = k0; k < k1; ++k) acc[k - k0] += row[k];
      } else if (op == ReduceOp::max) {
        for (int64_t k = k0; k < k1; ++k) acc[k - k0] = row[k] > acc[k - k0] ? row[k] : acc[k - k0];
      } else {
        for (int64_t k = k0; k < k1; ++k) acc[k - k0] = row[k] < acc[k - k0] ? row[k] : acc[k - k0];
      }
    }
    for (int64_t k = k0; k < k1; ++k) out[k] = static_cast<T>(acc[k - k0]);
  }
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  std::vector<int64_t> order;
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) reduced[d] = true;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!reduced[d]) order.push_back(d);
  }
  int64_t K = 1, R = 1;
  for (int64_t d = 0; d < x.dim(); ++d) (reduced[d] ? R : K) *= x.shape()[d];
  for (int64_t d : dims) order.push_back(d);
  Tensor p = x.detach().permute(order);
  // Try a [K, R] view; fall back to a contiguous copy.
  Tensor v;
  try {
    Tensor kr = p.reshape({K, R});
    v = kr.storage() == p.storage() ? kr : p.contiguous().reshape({K, R});
  } catch (const Error&) {
    v = p.contiguous().reshape({K, R});
  }
  if (R == 0) {
    check(op == ReduceOp::sum, "[reduce] max/min/argmax over an empty dimension of ", x.desc());
    fill(out, 0.0);
    return;
  }
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> ||
                  std::is_same_v<T, int64_t> || std::is_same_v<T, int32_t>) {
      const T* xp = static_cast<const T*>(v.raw_data());
      int64_t sk = v.strides()[0], sr = v.strides()[1];
      if (sr == 1 || R == 1 || op == ReduceOp::argmax) {
        if (sr != 1 && R != 1) {
          Tensor c = v.contiguous();
          reduce_rows<T>(op, static_cast<const T*>(c.raw_data()), K, R, R, out.raw_data());
        } else {
          reduce_rows<T>(op, xp, K, R, sk, out.raw_data());
        }
      } else if (sk == 1) {
        reduce_cols<T>(op, xp, K, R, sr, static_cast<T*>(out.raw_data()));
      } else {
        Tensor c = v.contiguous();
        reduce_rows<T>(op, static_cast<const T*>(c.raw_data()), K, R, R, out.raw_data());
      }
    } else {
      throw InternalError("reduce kernel called on an unsupported dtype");
    }
  });
}

}  // namespace strata::cpu
