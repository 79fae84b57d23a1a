// Strided, converting copies and fills on the GPU: the kernels behind contiguous(), clone(),
// to(dtype) and fill_. Same-dtype contiguous copies are one cudaMemcpyAsync.
#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

template <class D, class S>
struct Convert {
  __device__ D operator()(S v) const { return convert<D>(v); }
};

template <class T>
struct Constant {
  T value;
  __device__ T operator()() const { return value; }
};

/// Same-size types copy as raw bits, so 2-byte (bf16/f16/...) copies need one kernel.
template <size_t Bytes>
using Bits = std::conditional_t<
    Bytes == 1, uint8_t,
    std::conditional_t<Bytes == 2, uint16_t, std::conditional_t<Bytes == 4, uint32_t, uint64_t>>>;

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  check_internal(src.shape() == dst.shape(), "copy shape mismatch ", src.desc(), " -> ",
                 dst.desc());
  check_same_device("copy", src, dst);
  if (src.numel() == 0) return;
  if (src.dtype() == dst.dtype()) {
    if (src.is_contiguous() && dst.is_contiguous()) {
      STRATA_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(),
                                        src.numel() * dtype_size(src.dtype()),
                                        cudaMemcpyDeviceToDevice, stream_for(dst.device())));
      return;
    }
    auto raw = [&](auto bits) {
      using B = decltype(bits);
      map<B>("copy", dst, Convert<B, B>{}, arg<B>(src));
    };
    switch (dtype_size(src.dtype())) {
      case 1:
        return raw(Bits<1>{});
      case 2:
        return raw(Bits<2>{});
      case 4:
        return raw(Bits<4>{});
      default:
        return raw(Bits<8>{});
    }
  }
  visit_device_dtype(src.dtype(), [&](auto s_tag) {
    using S = decltype(s_tag);
    visit_device_dtype(dst.dtype(), [&](auto d_tag) {
      using D = decltype(d_tag);
      map<D>("copy (converting)", dst, Convert<D, S>{}, arg<S>(src));
    });
  });
}

void fill(const Tensor& dst, double value) {
  visit_device_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map<T>("fill", dst, Constant<T>{convert<T>(value)});
  });
}

}  // namespace strata::cuda
