// Strided, converting copies: the kernel behind contiguous(), clone() and to(dtype).
#include "core/backend/cpu/copy.h"

#include <cstring>

#include "core/backend/cpu/loops.h"

namespace strata::cpu {

void copy(const Tensor& src, const Tensor& dst) {
  check_internal(src.shape() == dst.shape(), "copy shape mismatch ", src.desc(), " -> ",
                 dst.desc());
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), src.numel() * dtype_size(src.dtype()));
    return;
  }
  visit_dtype(src.dtype(), [&](auto s_tag) {
    using S = decltype(s_tag);
    visit_dtype(dst.dtype(), [&](auto d_tag) {
      using D = decltype(d_tag);
      const S* sp = static_cast<const S*>(src.raw_data());
      D* dp = static_cast<D*>(dst.raw_data());
      strided_for<2>(
          dst.shape(), {dst.strides(), src.strides()},
          [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
            D* o = dp + off[0];
            const S* i = sp + off[1];
            for (int64_t j = 0; j < n; ++j) o[j * st[0]] = convert<D>(i[j * st[1]]);
          });
    });
  });
}

void fill(const Tensor& dst, double value) {
  visit_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = convert<T>(value);
    T* dp = static_cast<T*>(dst.raw_data());
    strided_for<1>(
        dst.shape(), {dst.strides()},
        [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
          T* o = dp + off[0];
          for (int64_t j = 0; j < n; ++j) o[j * st[0]] = v;
        });
  });
}

}  // namespace strata::cpu
