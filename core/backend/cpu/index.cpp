// Indexing kernels: one dtype switch per call, then loops over index-shaped iteration spaces.
// Scatter-like kernels keep every output row on one thread so duplicates never race.
#include "core/backend/cpu/index.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

/// a += b, through f32 for the storage-only types.
template <class T>
inline void accumulate(T& a, T b) {
  if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>) {
    a = T(static_cast<float>(a) + static_cast<float>(b));
  } else if constexpr (std::is_same_v<T, bool>) {
    a = a || b;
  } else {
    a = static_cast<T>(a + b);
  }
}

Shape without(const Shape& s, int64_t dim) {
  Shape r = s;
  r.erase(r.begin() + dim);
  return r;
}

}  // namespace

int64_t first_out_of_range(const Tensor& index, int64_t n) {
  const int64_t* p = index.data<int64_t>();
  const int64_t count = index.numel();
  int64_t first = count;
#pragma omp parallel for reduction(min : first) if (count >= kParallelGrain)
  for (int64_t i = 0; i < count; ++i) {
    if ((p[i] < 0 || p[i] >= n) && i < first) first = i;
  }
  return first == count ? -1 : first;
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  if (index.numel() == 0) return;
  Shape xs = x.strides();
  const int64_t dim_stride = xs[dim];
  xs[dim] = 0;  // the dim's contribution comes from the index value
  Shape xstrides(index.dim());
  for (int64_t d = 0; d < index.dim(); ++d) xstrides[d] = xs[d];
  const int64_t* ip = index.data<int64_t>();
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* op = static_cast<T*>(out.raw_data());
    strided_for<3>(
        index.shape(), {out.strides(), index.strides(), xstrides},
        [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
          T* o = op + off[0];
          const int64_t* i = ip + off[1];
          const T* s = xp + off[2];
          for (int64_t k = 0; k < n; ++k) o[k * st[0]] = s[k * st[2] + i[k * st[1]] * dim_stride];
        });
  });
}

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
             bool accumulate_values) {
  if (index.numel() == 0) return;
  // Iterate over every position except `dim`; each position walks `dim` in order.
  Shape outer = without(index.shape(), dim);
  Shape os(outer.size()), is = without(index.strides(), dim), ss = without(src.strides(), dim);
  for (size_t d = 0, k = 0; d < out.strides().size(); ++d) {
    if (static_cast<int64_t>(d) != dim) os[k++] = out.strides()[d];
  }
  const int64_t len = index.shape()[dim];
  const int64_t o_dim = out.strides()[dim], i_dim = index.strides()[dim];
  const int64_t s_dim = src.strides()[dim];
  const int64_t* ip = index.data<int64_t>();
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* op = static_cast<T*>(out.raw_data());
    const T* sp = static_cast<const T*>(src.raw_data());
    strided_for<3>(
        outer, {os, is, ss},
        [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
          for (int64_t k = 0; k < n; ++k) {
            T* o = op + off[0] + k * st[0];
            const int64_t* i = ip + off[1] + k * st[1];
            const T* s = sp + off[2] + k * st[2];
            for (int64_t j = 0; j < len; ++j) {
              T& dst = o[i[j * i_dim] * o_dim];
              if (accumulate_values) {
                accumulate(dst, s[j * s_dim]);
              } else {
                dst = s[j * s_dim];
              }
            }
          }
        },
        len);
  });
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  Tensor xc = x.contiguous();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.shape()[d];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.shape()[d];
  const int64_t rows = x.shape()[dim], len = index.numel();
  const int64_t* ip = index.data<int64_t>();
  const int64_t bytes = inner * dtype_size(x.dtype());
  const auto* xp = static_cast<const char*>(xc.raw_data());
  auto* op = static_cast<char*>(out.raw_data());
#pragma omp parallel for if (outer * len * inner >= kParallelGrain) schedule(static)
  for (int64_t r = 0; r < outer * len; ++r) {
    int64_t o = r / len, l = r % len;
    std::memcpy(op + r * bytes, xp + (o * rows + ip[l]) * bytes, bytes);
  }
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
               int64_t skip) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.shape()[d];
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= out.shape()[d];
  const int64_t rows = out.shape()[dim], len = index.numel();
  const int64_t* ip = index.data<int64_t>();
  const bool parallel = outer * len * inner >= kParallelGrain;
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  // Few outer blocks (dim 0, as in embedding): split the columns instead.
  const int64_t parts = outer >= threads ? 1 : std::min(threads, inner);
  const int64_t chunk = (inner + parts - 1) / parts;
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* op = static_cast<T*>(out.raw_data());
    const T* sp = static_cast<const T*>(src.raw_data());
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t u = 0; u < outer * parts; ++u) {
      const int64_t o = u / parts, b = (u % parts) * chunk, e = std::min(inner, b + chunk);
      for (int64_t l = 0; l < len; ++l) {
        if (ip[l] == skip) continue;
        T* dst = op + (o * rows + ip[l]) * inner;
        const T* s = sp + (o * len + l) * inner;
        for (int64_t j = b; j < e; ++j) accumulate(dst[j], s[j]);
      }
    }
  });
}

void upsample_nearest2d(const Tensor& x, const Tensor& out, int64_t sh, int64_t sw) {
  const int64_t planes = x.shape()[0] * x.shape()[1], h = x.shape()[2], w = x.shape()[3];
  const int64_t ow = w * sw, out_rows = planes * h * sh;
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* op = static_cast<T*>(out.raw_data());
#pragma omp parallel for if (out_rows * ow >= kParallelGrain) schedule(static)
    for (int64_t r = 0; r < out_rows; ++r) {
      const int64_t plane = r / (h * sh), y = (r % (h * sh)) / sh;
      const T* src = xp + (plane * h + y) * w;
      T* dst = op + r * ow;
      for (int64_t i = 0; i < w; ++i) {
        for (int64_t k = 0; k < sw; ++k) dst[i * sw + k] = src[i];
      }
    }
  });
}

}  // namespace strata::cpu
