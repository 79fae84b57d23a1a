// Dropout on the GPU with the CPU's Philox4x32-10 stream: element i keeps lane i%4 of block
// (seed, base + i/4), so a (seed, offset) gives the same mask on both devices.
#include "core/backend/cuda/embedding.h"
#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

/// Philox4x32-10 exactly as core/random.cpp (stream 0).
__device__ inline uint4 philox(uint64_t seed, uint64_t counter) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return make_uint4(c0, c1, c2, c3);
}

template <class T>
__global__ void dropout_kernel(const T* x, T* out, bool* mask, int64_t n, uint64_t seed,
                               uint64_t base, float keep, T scale) {
  const int64_t blocks = (n + 3) / 4, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += step) {
    const uint4 r = philox(seed, base + uint64_t(b));
    const uint32_t lanes[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = b * 4 + j;
      if (i >= n) break;
      // uniform_float of core/random.h: 24 random bits scaled to [0, 1).
      const bool kept = float(lanes[j] >> 8) * 0x1.0p-24f < keep;
      mask[i] = kept;
      out[i] = kept ? x[i] * scale : T(0);
    }
  }
}

template <class T>
struct MaskScale {
  T scale;
  __device__ T operator()(T g, bool m) const { return m ? g * scale : T(0); }
};

}  // namespace

void dropout(const Tensor& x, const Tensor& out, const Tensor& mask, uint64_t seed, uint64_t base,
             float keep, double scale) {
  const int64_t n = x.numel();
  if (n == 0) return;
  visit_floating(x, "dropout", [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<blocks_for((n + 3) / 4), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), mptr<T>(out), mptr<bool>(mask), n, seed, base, keep, T(scale));
    STRATA_CUDA_CHECK_LAUNCH("dropout");
  });
}

void dropout_backward(const Tensor& g, const Tensor& mask, const Tensor& out, double scale) {
  visit_floating(g, "dropout_backward", [&](auto tag) {
    using T = decltype(tag);
    map<T>("dropout_backward", out, MaskScale<T>{T(scale)}, arg<T>(g), arg<bool>(mask));
  });
}

}  // namespace strata::cuda
