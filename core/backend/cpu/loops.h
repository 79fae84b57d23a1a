// The strided loop every CPU element-wise kernel uses: dimensions are coalesced first, so
// contiguous operands become one long inner run, and outer runs are split across OpenMP
// threads only when the work is large enough to pay for the fork.
#pragma once

#include <omp.h>

#include <array>
#include <cstdint>

#include "core/dtype.h"
#include "core/shape.h"

namespace strata::cpu {

/// Elements below which a loop stays on one thread.
inline constexpr int64_t kParallelGrain = 32768;

/// Conversion between element types; bf16 and f16 go through f32.
template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, BFloat16> || std::is_same_v<From, Half>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, BFloat16> || std::is_same_v<To, Half>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else {
    return static_cast<To>(v);
  }
}

/// Merges adjacent dimensions that are contiguous with each other in every operand.
template <size_t N>
void coalesce(Shape& shape, std::array<Shape, N>& strides) {
  Shape s;
  std::array<Shape, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !s.empty();
    for (size_t k = 0; k < N && merge; ++k) {
      merge = st[k].back() == strides[k][d] * shape[d];
    }
    if (merge) {
      s.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      s.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (s.empty()) {
    s.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(0);
  }
  shape = std::move(s);
  strides = std::move(st);
}

/// Calls fn(offsets) for outer indices [begin, end) of a coalesced shape (last dim excluded).
template <size_t N, class Fn>
void walk_outer(const Shape& shape, const std::array<Shape, N>& strides, int64_t begin, int64_t end,
                Fn&& fn) {
  if (begin >= end) return;
  const int64_t nd = static_cast<int64_t>(shape.size());
  Shape idx(nd, 0);
  std::array<int64_t, N> off{};
  int64_t rem = begin;
  for (int64_t d = nd - 2; d >= 0; --d) {
    idx[d] = rem % shape[d];
    rem /= shape[d];
    for (size_t k = 0; k < N; ++k) off[k] += idx[d] * strides[k][d];
  }
  for (int64_t o = begin; o < end; ++o) {
    fn(off);
    for (int64_t d = nd - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= (shape[d] - 1) * strides[k][d];
      idx[d] = 0;
    }
  }
}

/// Calls body(offsets, n, inner_strides) over all inner runs of `shape`. Offsets and strides
/// are in elements, one per operand. `cost` scales the parallel threshold for heavy bodies.
template <size_t N, class Body>
void strided_for(Shape shape, std::array<Shape, N> strides, Body&& body, int64_t cost = 1) {
  if (numel_of(shape) == 0) return;  // no runs (and no division by an empty inner run)
  coalesce(shape, strides);
  const int64_t nd = static_cast<int64_t>(shape.size());
  const int64_t inner = shape[nd - 1];
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = strides[k][nd - 1];
  const int64_t outer = numel_of(shape) / inner;
  auto whole_run = [&](const std::array<int64_t, N>& off) { body(off, inner, inner_strides); };

  if (numel_of(shape) * cost < kParallelGrain) {
    walk_outer(shape, strides, 0, outer, whole_run);
    return;
  }
  if (outer < 4 * omp_get_max_threads()) {
    // Few long runs: every thread walks all of them and takes its slice of each.
#pragma omp parallel
    {
      int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      int64_t chunk = (inner + nt - 1) / nt;
      int64_t b = std::min(inner, t * chunk), e = std::min(inner, b + chunk);
      if (e > b) {
        walk_outer(shape, strides, 0, outer, [&](std::array<int64_t, N> off) {
          for (size_t k = 0; k < N; ++k) off[k] += b * inner_strides[k];
          body(off, e - b, inner_strides);
        });
      }
    }
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (outer + nt - 1) / nt;
    walk_outer(shape, strides, std::min(outer, t * chunk), std::min(outer, (t + 1) * chunk),
               whole_run);
  }
}

}  // namespace strata::cpu
