// im2col/col2im convolutions on OpenBLAS. OpenMP threads take whole samples and run
// single-threaded GEMMs (OpenBLAS's OpenMP build does not nest); a batch smaller than the
// thread count runs samples in turn so that OpenBLAS threads each GEMM instead. The GEMMs
// read per-thread scratch buffers through raw pointers, so they call cblas directly.
#include "core/backend/cpu/conv.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/backend/cpu/conv_direct.h"
#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

/// c (m, n) = op(a) (m, k) @ op(b) (k, n) + beta * c, row-major.
template <class T>
void gemm_raw(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, oa, ob, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, oa, ob, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
  }
}

/// Rows of one group's column matrix: C_in / groups * kH * kW.
int64_t group_rows(const ConvGeometry& g) {
  return g.in_channels / g.groups * g.kernel_h * g.kernel_w;
}

/// A 1x1, stride-1, unpadded conv reads its input as the column matrix itself.
bool is_pointwise(const ConvGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

/// The outputs o in [lo, hi) of [0, n) whose input index off + o * s lies in [0, size).
void valid_range(int64_t off, int64_t s, int64_t size, int64_t n, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = off >= size ? 0 : (size - off + s - 1) / s;
  lo = std::min(lo, n);
  hi = std::clamp(hi, lo, n);
}

/// Output rows [r0, r1) of one chunk of the column matrix.
struct RowChunk {
  int64_t r0, r1;
};

/// col (C_in * kH * kW, (r1 - r0) * out_w) for output rows [r0, r1) of one sample x
/// (C_in, H, W); padding reads 0.
template <class T>
void im2col(const T* x, const ConvGeometry& g, RowChunk rc, T* col) {
  const int64_t ow = g.out_w, Lc = (rc.r1 - rc.r0) * ow;
  for (int64_t c = 0; c < g.in_channels; ++c) {
    const T* xc = x + c * g.in_h * g.in_w;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        T* row = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * Lc;  // from row r0
        int64_t ih0 = ki * g.dil_h - g.pad_h, iw0 = kj * g.dil_w - g.pad_w;
        int64_t hlo, hhi, wlo, whi;
        valid_range(ih0, g.stride_h, g.in_h, g.out_h, hlo, hhi);
        valid_range(iw0, g.stride_w, g.in_w, ow, wlo, whi);
        hlo = std::clamp(hlo, rc.r0, rc.r1);
        hhi = std::clamp(hhi, hlo, rc.r1);
        std::fill(row, row + (hlo - rc.r0) * ow, T(0));
        std::fill(row + (hhi - rc.r0) * ow, row + Lc, T(0));
        for (int64_t oh = hlo; oh < hhi; ++oh) {
          T* dst = row + (oh - rc.r0) * ow;
          const T* src = xc + (ih0 + oh * g.stride_h) * g.in_w;
          // Plain loops, not std::copy/fill: rows are often 8 to 32 long, where a library
          // call costs more than the copy.
          for (int64_t o = 0; o < wlo; ++o) dst[o] = T(0);
          if (g.stride_w == 1) {
            const T* s = src + iw0;
#pragma omp simd
            for (int64_t o = wlo; o < whi; ++o) dst[o] = s[o];
          } else {
            for (int64_t o = wlo; o < whi; ++o) dst[o] = src[iw0 + o * g.stride_w];
          }
          for (int64_t o = whi; o < ow; ++o) dst[o] = T(0);
        }
      }
    }
  }
}

/// x (C_in, H, W) += the adjoint of im2col applied to the chunk col of output rows
/// [r0, r1); padding positions are dropped.
template <class T>
void col2im(const T* col, const ConvGeometry& g, RowChunk rc, T* x) {
  const int64_t ow = g.out_w, Lc = (rc.r1 - rc.r0) * ow;
  for (int64_t c = 0; c < g.in_channels; ++c) {
    T* xc = x + c * g.in_h * g.in_w;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const T* row = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * Lc;
        int64_t ih0 = ki * g.dil_h - g.pad_h, iw0 = kj * g.dil_w - g.pad_w;
        int64_t hlo, hhi, wlo, whi;
        valid_range(ih0, g.stride_h, g.in_h, g.out_h, hlo, hhi);
        valid_range(iw0, g.stride_w, g.in_w, ow, wlo, whi);
        hlo = std::clamp(hlo, rc.r0, rc.r1);
        hhi = std::clamp(hhi, hlo, rc.r1);
        for (int64_t oh = hlo; oh < hhi; ++oh) {
          const T* src = row + (oh - rc.r0) * ow;
          T* dst = xc + (ih0 + oh * g.stride_h) * g.in_w;
          if (g.stride_w == 1) {
            T* d = dst + iw0 + wlo;
            const T* s = src + wlo;
#pragma omp simd
            for (int64_t o = 0; o < whi - wlo; ++o) d[o] += s[o];
          } else {
            for (int64_t o = wlo; o < whi; ++o) dst[iw0 + o * g.stride_w] += src[o];
          }
        }
      }
    }
  }
}

/// Output rows per chunk: a chunk's column matrix stays within about 128 KiB of f32 so that
/// the GEMM packs it from L2 (three times faster than from memory on ResNet's first stage),
/// but keeps at least 256 columns so that each GEMM stays wide enough to be efficient.
int64_t chunk_rows(const ConvGeometry& g) {
  const int64_t rows = g.in_channels * g.kernel_h * g.kernel_w;
  const int64_t cols = std::max<int64_t>(256, 32768 / std::max<int64_t>(rows, 1));
  return std::clamp<int64_t>(cols / std::max<int64_t>(g.out_w, 1), 1,
                             std::max<int64_t>(g.out_h, 1));
}

/// Calls fn(chunk) for consecutive row chunks covering the output.
template <class Fn>
void for_each_chunk(const ConvGeometry& g, Fn&& fn) {
  const int64_t step = chunk_rows(g);
  for (int64_t r0 = 0; r0 < g.out_h; r0 += step) fn(RowChunk{r0, std::min(g.out_h, r0 + step)});
}

/// Adds b[c] to every element of plane c of y (channels, plane).
template <class T>
void add_channel_bias(T* y, const T* b, int64_t channels, int64_t plane) {
  for (int64_t c = 0; c < channels; ++c) {
    T v = b[c];
    T* r = y + c * plane;
#pragma omp simd
    for (int64_t i = 0; i < plane; ++i) r[i] += v;
  }
}

/// Calls body(n, scratch, thread) for each sample; threads split the batch when it is large
/// enough, each with its own scratch buffer of `scratch` elements.
template <class T, class Body>
void for_each_sample(int64_t batch, int64_t scratch, int64_t work_per_sample, Body&& body) {
  const int nt = omp_get_max_threads();
  if (nt == 1 || batch < nt || batch * work_per_sample < kParallelGrain) {
    std::vector<T> buf(scratch);
    for (int64_t n = 0; n < batch; ++n) body(n, buf.data(), 0);
    return;
  }
#pragma omp parallel
  {
    std::vector<T> buf(scratch);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < batch; ++n) body(n, buf.data(), omp_get_thread_num());
  }
}

/// Scratch elements for one thread: a chunk of the column matrix.
int64_t scratch_size(const ConvGeometry& g) {
  if (is_pointwise(g)) return 0;
  return g.in_channels * g.kernel_h * g.kernel_w * chunk_rows(g) * g.out_w;
}

template <class T>
void forward_impl(const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
  const int64_t K = group_rows(g), L = g.out_h * g.out_w, cog = g.out_channels / g.groups;
  const bool pointwise = is_pointwise(g);
  for_each_sample<T>(g.batch, scratch_size(g), K * L * g.out_channels, [&](int64_t n, T* col, int) {
    const T* xn = x + n * g.in_channels * g.in_h * g.in_w;
    T* yn = y + n * g.out_channels * L;
    for_each_chunk(g, [&](RowChunk rc) {
      const int64_t off = rc.r0 * g.out_w, Lc = (rc.r1 - rc.r0) * g.out_w;
      if (!pointwise) im2col(xn, g, rc, col);
      // Pointwise convs read x itself: rows of length L, starting at the chunk's column.
      const T* cols = pointwise ? xn + off : col;
      const int64_t ldc = pointwise ? L : Lc;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        gemm_raw<T>(false, false, cog, Lc, K, w + gr * cog * K, K, cols + gr * K * ldc, ldc, T(0),
                    yn + gr * cog * L + off, L);
      }
    });
    if (bias) add_channel_bias(yn, bias, g.out_channels, L);
  });
}

template <class T>
void input_grad_impl(const T* gy, const T* w, const T* bias, T* gx, const ConvGeometry& g) {
  const int64_t K = group_rows(g), L = g.out_h * g.out_w, cog = g.out_channels / g.groups;
  const int64_t plane = g.in_h * g.in_w;
  const bool pointwise = is_pointwise(g);
  for_each_sample<T>(g.batch, scratch_size(g), K * L * g.out_channels, [&](int64_t n, T* col, int) {
    const T* gyn = gy + n * g.out_channels * L;
    T* gxn = gx + n * g.in_channels * plane;
    if (!pointwise) std::fill(gxn, gxn + g.in_channels * plane, T(0));
    for_each_chunk(g, [&](RowChunk rc) {
      const int64_t off = rc.r0 * g.out_w, Lc = (rc.r1 - rc.r0) * g.out_w;
      // (C_in * kH * kW, Lc) in group blocks of K rows; pointwise convs write gx directly.
      T* cols = pointwise ? gxn + off : col;
      const int64_t ldc = pointwise ? L : Lc;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        gemm_raw<T>(true, false, K, Lc, cog, w + gr * cog * K, K, gyn + gr * cog * L + off, L, T(0),
                    cols + gr * K * ldc, ldc);
      }
      if (!pointwise) col2im(col, g, rc, gxn);
    });
    if (bias) add_channel_bias(gxn, bias, g.in_channels, plane);
  });
}

template <class T>
void weight_grad_impl(const T* x, const T* gy, T* gw, const ConvGeometry& g) {
  const int64_t K = group_rows(g), L = g.out_h * g.out_w, cog = g.out_channels / g.groups;
  const int64_t wsize = g.out_channels * K;
  const bool pointwise = is_pointwise(g);
  // One accumulator per thread, summed at the end: samples add into the same weights.
  std::vector<T> partial(static_cast<size_t>(omp_get_max_threads() * wsize), T(0));
  for_each_sample<T>(g.batch, scratch_size(g), K * L * g.out_channels,
                     [&](int64_t n, T* col, int t) {
                       const T* xn = x + n * g.in_channels * g.in_h * g.in_w;
                       const T* gyn = gy + n * g.out_channels * L;
                       T* acc = partial.data() + t * wsize;
                       for_each_chunk(g, [&](RowChunk rc) {
                         const int64_t off = rc.r0 * g.out_w, Lc = (rc.r1 - rc.r0) * g.out_w;
                         if (!pointwise) im2col(xn, g, rc, col);
                         const T* cols = pointwise ? xn + off : col;
                         const int64_t ldc = pointwise ? L : Lc;
                         for (int64_t gr = 0; gr < g.groups; ++gr) {
                           gemm_raw<T>(false, true, cog, K, Lc, gyn + gr * cog * L + off, L,
                                       cols + gr * K * ldc, ldc, T(1), acc + gr * cog * K, K);
                         }
                       });
                     });
  const int64_t nt = static_cast<int64_t>(partial.size()) / std::max<int64_t>(wsize, 1);
  for (int64_t i = 0; i < wsize; ++i) {
    T s = 0;
    for (int64_t t = 0; t < nt; ++t) s += partial[t * wsize + i];
    gw[i] = s;
  }
}

template <class T>
void bias_grad_impl(const T* gy, T* gb, int64_t batch, int64_t channels, int64_t plane) {
  using Acc = double;  // f32 sums of whole batches lose digits otherwise
#pragma omp parallel for if (batch * channels * plane >= kParallelGrain) schedule(static)
  for (int64_t c = 0; c < channels; ++c) {
    Acc acc = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const T* r = gy + (n * channels + c) * plane;
      Acc s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < plane; ++i) s += r[i];
      acc += s;
    }
    gb[c] = static_cast<T>(acc);
  }
}

/// Adds b[c] to plane c of every sample of y (batch, channels, plane).
void add_bias_per_sample(float* y, const float* b, int64_t batch, int64_t channels, int64_t plane) {
#pragma omp parallel for if (batch * channels * plane >= kParallelGrain) schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    add_channel_bias(y + n * channels * plane, b, channels, plane);
}

template <class Fn>
void dispatch(const Tensor& t, Fn&& fn) {
  if (t.dtype() == DType::f64) {
    fn(double{});
  } else {
    check_internal(t.dtype() == DType::f32, "conv kernel on ", t.desc());
    fn(float{});
  }
}

template <class T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const ConvGeometry& g) {
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (direct_conv_supported(g)) {
        direct_conv_forward(x.data<float>(), w.data<float>(), y.data<float>(), g);
        if (bias.defined()) {
          add_bias_per_sample(y.data<float>(), bias.data<float>(), g.batch, g.out_channels,
                              g.out_h * g.out_w);
        }
        return;
      }
    }
    forward_impl<T>(x.data<T>(), w.data<T>(), optional_data<T>(bias), y.data<T>(), g);
  });
}

void conv2d_input_grad(const Tensor& gy, const Tensor& w, const Tensor& bias, const Tensor& gx,
                       const ConvGeometry& g) {
  dispatch(gy, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (direct_conv_supported(g)) {
        direct_conv_input_grad(gy.data<float>(), w.data<float>(), gx.data<float>(), g);
        if (bias.defined()) {
          add_bias_per_sample(gx.data<float>(), bias.data<float>(), g.batch, g.in_channels,
                              g.in_h * g.in_w);
        }
        return;
      }
    }
    input_grad_impl<T>(gy.data<T>(), w.data<T>(), optional_data<T>(bias), gx.data<T>(), g);
  });
}

void conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Tensor& gw,
                        const ConvGeometry& g) {
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (direct_conv_supported(g)) {
        direct_conv_weight_grad(x.data<float>(), gy.data<float>(), gw.data<float>(), g);
        return;
      }
    }
    weight_grad_impl<T>(x.data<T>(), gy.data<T>(), gw.data<T>(), g);
  });
}

void conv2d_bias_grad(const Tensor& gy, const Tensor& gb) {
  dispatch(gy, [&](auto tag) {
    using T = decltype(tag);
    bias_grad_impl<T>(gy.data<T>(), gb.data<T>(), gy.size(0), gy.size(1), gy.size(2) * gy.size(3));
  });
}

}  // namespace strata::cpu
