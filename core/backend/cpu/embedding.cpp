// Dropout kernels: the mask is a pure function of (seed, counter) so the CUDA kernel, which
// draws the same Philox blocks, produces the same mask.
#include "core/backend/cpu/embedding.h"

#include "core/backend/cpu/loops.h"
#include "core/random.h"

namespace strata::cpu {

void dropout(const Tensor& x, const Tensor& out, const Tensor& mask, uint64_t seed, uint64_t base,
             float keep, double scale) {
  const int64_t n = x.numel(), blocks = (n + 3) / 4;
  bool* mp = mask.data<bool>();
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T* xp = x.data<T>();
      T* op = out.data<T>();
      const T s = static_cast<T>(scale);
#pragma omp parallel for if (n >= kParallelGrain) schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        auto r = philox4x32(seed, base + static_cast<uint64_t>(b));
        for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j) {
          const int64_t i = b * 4 + j;
          const bool kept = uniform_float(r[j]) < keep;
          mp[i] = kept;
          op[i] = kept ? xp[i] * s : T(0);
        }
      }
    } else {
      check_internal(false, "dropout kernel called for ", x.desc());
    }
  });
}

void dropout_backward(const Tensor& g, const Tensor& mask, const Tensor& out, double scale) {
  const int64_t n = g.numel();
  const bool* mp = mask.data<bool>();
  visit_dtype(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T* gp = g.data<T>();
      T* op = out.data<T>();
      const T s = static_cast<T>(scale);
#pragma omp parallel for simd if (n >= kParallelGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) op[i] = mp[i] ? gp[i] * s : T(0);
    } else {
      check_internal(false, "dropout_backward kernel called for ", g.desc());
    }
  });
}

}  // namespace strata::cpu
