// 2-D pooling on the GPU: one thread per output element for the forwards and the gather; the
// adjoints (max scatter, average backward) run one thread per input element and sum the
// outputs whose window covers it in ascending output order, so no atomics are needed and the
// sums are deterministic and in the CPU's order.
#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/pool.h"

namespace strata::cuda {
namespace {

using cpu::PoolGeometry;

/// The input range [lo, hi) of output o along one axis, clipped to the input (cpu/pool.cpp).
struct Axis {
  int64_t in, out, kernel, stride, pad;
  bool adaptive;

  __device__ void range(int64_t o, int64_t& lo, int64_t& hi) const {
    if (adaptive) {
      lo = o * in / out;
      hi = ((o + 1) * in + out - 1) / out;
    } else {
      const int64_t start = o * stride - pad;
      lo = start > 0 ? start : 0;
      hi = start + kernel < in ? start + kernel : in;
    }
  }
  /// Outputs [first, last) that may cover input i (a superset; callers check range()).
  __device__ void covering(int64_t i, int64_t& first, int64_t& last) const {
    if (adaptive) {
      first = i * out / in;
      last = ((i + 1) * out + in - 1) / in;
    } else {
      const int64_t low = i + pad - kernel + 1;
      first = low > 0 ? (low + stride - 1) / stride : 0;
      last = (i + pad) / stride + 1;
    }
    if (last > out) last = out;
  }
};

Axis axis_h(const PoolGeometry& g) {
  return {g.in_h, g.out_h, g.kernel_h, g.stride_h, g.pad_h, g.adaptive};
}
Axis axis_w(const PoolGeometry& g) {
  return {g.in_w, g.out_w, g.kernel_w, g.stride_w, g.pad_w, g.adaptive};
}

/// 1 / the divisor of an average: the padded kernel area, or the adaptive window's size.
template <class T>
__device__ T inv_count(const Axis& ah, const Axis& aw, int64_t h0, int64_t h1, int64_t w0,
                       int64_t w1) {
  int64_t n = ah.adaptive ? (h1 - h0) * (w1 - w0) : ah.kernel * aw.kernel;
  return T(1) / static_cast<T>(n > 1 ? n : 1);
}

template <class T>
__global__ void max_pool_kernel(const T* x, T* y, int64_t* idx, Axis ah, Axis aw, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t ow = i % aw.out, oh = i / aw.out % ah.out, p = i / (aw.out * ah.out);
    int64_t h0, h1, w0, w1;
    ah.range(oh, h0, h1);
    aw.range(ow, w0, w1);
    const T* xp = x + p * ah.in * aw.in;
    T best = -INFINITY;
    int64_t at = h0 * aw.in + w0;
    bool nan = false;  // a NaN wins and ends the search, as on the CPU
    for (int64_t h = h0; h < h1 && !nan; ++h) {
      for (int64_t w = w0; w < w1; ++w) {
        const T v = xp[h * aw.in + w];
        if (v > best || v != v) {
          best = v;
          at = h * aw.in + w;
          nan = v != v;
          if (nan) break;
        }
      }
    }
    y[i] = best;
    idx[i] = at;
  }
}

/// gx[h, w] = the sum of gy over the outputs whose argmax is (h, w).
template <class T>
__global__ void max_scatter_kernel(const T* gy, const int64_t* idx, T* gx, Axis ah, Axis aw,
                                   int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t w = i % aw.in, h = i / aw.in % ah.in, p = i / (aw.in * ah.in);
    const int64_t base = p * ah.out * aw.out, at = h * aw.in + w;
    int64_t oh0, oh1, ow0, ow1;
    ah.covering(h, oh0, oh1);
    aw.covering(w, ow0, ow1);
    T s = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t o = base + oh * aw.out + ow;
        if (idx[o] == at) s += gy[o];
      }
    }
    gx[i] = s;
  }
}

template <class T>
__global__ void max_gather_kernel(const T* x, const int64_t* idx, T* y, int64_t in_plane,
                                  int64_t out_plane, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    y[i] = x[i / out_plane * in_plane + idx[i]];
  }
}

template <class T>
__global__ void avg_pool_kernel(const T* x, T* y, Axis ah, Axis aw, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t ow = i % aw.out, oh = i / aw.out % ah.out, p = i / (aw.out * ah.out);
    int64_t h0, h1, w0, w1;
    ah.range(oh, h0, h1);
    aw.range(ow, w0, w1);
    const T* xp = x + p * ah.in * aw.in;
    T s = 0;
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t w = w0; w < w1; ++w) s += xp[h * aw.in + w];
    }
    y[i] = s * inv_count<T>(ah, aw, h0, h1, w0, w1);
  }
}

/// gx[h, w] = the sum of gy / count over the outputs whose window covers (h, w).
template <class T>
__global__ void avg_backward_kernel(const T* gy, T* gx, Axis ah, Axis aw, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t w = i % aw.in, h = i / aw.in % ah.in, p = i / (aw.in * ah.in);
    const T* gyp = gy + p * ah.out * aw.out;
    int64_t oh0, oh1, ow0, ow1;
    ah.covering(h, oh0, oh1);
    aw.covering(w, ow0, ow1);
    T s = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      int64_t h0, h1;
      ah.range(oh, h0, h1);
      if (h < h0 || h >= h1) continue;
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        int64_t w0, w1;
        aw.range(ow, w0, w1);
        if (w < w0 || w >= w1) continue;
        s += gyp[oh * aw.out + ow] * inv_count<T>(ah, aw, h0, h1, w0, w1);
      }
    }
    gx[i] = s;
  }
}

}  // namespace

void max_pool2d(const Tensor& x, const Tensor& y, const Tensor& indices, const PoolGeometry& g) {
  const int64_t n = y.numel();
  if (n == 0) return;
  visit_floating(x, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_pool_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), mptr<T>(y), mptr<int64_t>(indices), axis_h(g), axis_w(g), n);
    STRATA_CUDA_CHECK_LAUNCH("max_pool2d");
  });
}

void max_pool2d_scatter(const Tensor& gy, const Tensor& indices, const Tensor& gx,
                        const PoolGeometry& g) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  visit_floating(gy, "max_pool2d_scatter", [&](auto tag) {
    using T = decltype(tag);
    max_scatter_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(gy.device())>>>(
        cptr<T>(gy), cptr<int64_t>(indices), mptr<T>(gx), axis_h(g), axis_w(g), n);
    STRATA_CUDA_CHECK_LAUNCH("max_pool2d_scatter");
  });
}

void max_pool2d_gather(const Tensor& x, const Tensor& indices, const Tensor& y,
                       const PoolGeometry& g) {
  const int64_t n = y.numel();
  if (n == 0) return;
  visit_floating(x, "max_pool2d_gather", [&](auto tag) {
    using T = decltype(tag);
    max_gather_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), cptr<int64_t>(indices), mptr<T>(y), g.in_h * g.in_w, g.out_h * g.out_w, n);
    STRATA_CUDA_CHECK_LAUNCH("max_pool2d_gather");
  });
}

void avg_pool2d(const Tensor& x, const Tensor& y, const PoolGeometry& g) {
  const int64_t n = y.numel();
  if (n == 0) return;
  visit_floating(x, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(x.device())>>>(
        cptr<T>(x), mptr<T>(y), axis_h(g), axis_w(g), n);
    STRATA_CUDA_CHECK_LAUNCH("avg_pool2d");
  });
}

void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeometry& g) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  visit_floating(gy, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    avg_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(gy.device())>>>(
        cptr<T>(gy), mptr<T>(gx), axis_h(g), axis_w(g), n);
    STRATA_CUDA_CHECK_LAUNCH("avg_pool2d_backward");
  });
}

}  // namespace strata::cuda
