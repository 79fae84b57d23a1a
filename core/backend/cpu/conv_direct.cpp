// Direct stride-1 f32 convolution: each sample is copied once into a zero-padded buffer and
// a register-blocked AVX2 kernel (4 output channels x 24 pixels) accumulates over
// (C_in, kH, kW), so neither the kH*kW-fold im2col copy nor GEMM packing happens.
#include "core/backend/cpu/conv_direct.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/backend/cpu/loops.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define STRATA_DIRECT_CONV 1
#else
#define STRATA_DIRECT_CONV 0
#endif

namespace strata::cpu {
namespace {

constexpr int64_t kMr = 4;   // output channels per register block
constexpr int64_t kVec = 8;  // floats per AVX2 vector
constexpr int kMaxNv = 3;    // vectors of output pixels per register block

/// A stride-1 conv of a padded input (c_in, hp, wp) into (c_out, ho, wo), where
/// ho = hp - kh + 1 and wo = wp - kw + 1.
struct Plan {
  int64_t c_in, c_out, hp, wp, ho, wo, kh, kw;
};

#if STRATA_DIRECT_CONV
/// out rows [0, rows) at pixels out_off[v] .. +8 = sum over (c, ki, kj) of the weight block
/// wb (c_in, kh * kw, kMr) times the input vectors at base[v] + ki * wp + kj.
template <int NV>
void tile(const float* in, const float* wb, const Plan& p, const int64_t* base, float* out,
          const int64_t* out_off, int64_t rows) {
  __m256 acc[kMr][NV];
  for (int r = 0; r < kMr; ++r) {
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  }
  const int64_t plane = p.hp * p.wp;
  for (int64_t c = 0; c < p.c_in; ++c) {
    const float* ic = in + c * plane;
    for (int64_t ki = 0; ki < p.kh; ++ki) {
      const float* irow = ic + ki * p.wp;
      for (int64_t kj = 0; kj < p.kw; ++kj, wb += kMr) {
        __m256 xv[NV];
        for (int v = 0; v < NV; ++v) xv[v] = _mm256_loadu_ps(irow + base[v] + kj);
        for (int r = 0; r < kMr; ++r) {
          __m256 b = _mm256_broadcast_ss(wb + r);
          for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(b, xv[v], acc[r][v]);
        }
      }
    }
  }
  const int64_t plane_out = p.ho * p.wo;
  // A constant trip count keeps acc in registers; a loop to `rows` would force it to memory.
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(out + r * plane_out + out_off[v], acc[r][v]);
  }
}

/// out (c_out, ho, wo) = the conv of one padded sample in with the packed weights.
void conv_sample(const float* in, const float* packed, const Plan& p, float* out) {
  const int64_t plane_out = p.ho * p.wo, nvec = plane_out / kVec;
  const int64_t block = p.c_in * p.kh * p.kw * kMr;
  for (int64_t cb = 0; cb < p.c_out; cb += kMr) {
    const float* wb = packed + cb / kMr * block;
    float* ob = out + cb * plane_out;
    const int64_t rows = std::min(kMr, p.c_out - cb);
    for (int64_t v0 = 0; v0 < nvec; v0 += kMaxNv) {
      const int64_t nv = std::min<int64_t>(kMaxNv, nvec - v0);
      int64_t base[kMaxNv], off[kMaxNv];
      for (int64_t i = 0; i < nv; ++i) {
        off[i] = (v0 + i) * kVec;  // a whole vector inside one output row: wo % 8 == 0
        base[i] = off[i] / p.wo * p.wp + off[i] % p.wo;
      }
      if (nv == 3) {
        tile<3>(in, wb, p, base, ob, off, rows);
      } else if (nv == 2) {
        tile<2>(in, wb, p, base, ob, off, rows);
      } else {
        tile<1>(in, wb, p, base, ob, off, rows);
      }
    }
  }
}
#else
void conv_sample(const float*, const float*, const Plan&, float*) {}
#endif

/// packed (ceil(c_out / kMr), c_in, kk, kMr) from weight(o, i, k); channels past c_out are 0.
template <class Weight>
std::vector<float> pack_weights(int64_t c_out, int64_t c_in, int64_t kk, Weight&& weight) {
  const int64_t blocks = (c_out + kMr - 1) / kMr;
  std::vector<float> packed(static_cast<size_t>(blocks * c_in * kk * kMr), 0.0f);
  for (int64_t o = 0; o < c_out; ++o) {
    float* dst = packed.data() + o / kMr * c_in * kk * kMr + o % kMr;
    for (int64_t i = 0; i < c_in; ++i) {
      for (int64_t k = 0; k < kk; ++k) dst[(i * kk + k) * kMr] = weight(o, i, k);
    }
  }
  return packed;
}

/// out (batch, c_out, ho, wo) = stride-1 conv of in (batch, c_in, h, w) zero-padded by
/// (ph, pw); threads take whole samples, each with its own padded buffer.
void run(const float* in, int64_t batch, int64_t h, int64_t w, int64_t ph, int64_t pw,
         const std::vector<float>& packed, const Plan& p, float* out) {
  const int64_t in_size = p.c_in * h * w, out_size = p.c_out * p.ho * p.wo;
  const int64_t work = out_size * p.c_in * p.kh * p.kw;
#pragma omp parallel if (batch > 1 && batch * work >= kParallelGrain)
  {
    // Borders are zeroed once; each sample overwrites only the interior.
    std::vector<float> buf(static_cast<size_t>(p.c_in * p.hp * p.wp), 0.0f);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < batch; ++n) {
      const float* src = in + n * in_size;
      for (int64_t c = 0; c < p.c_in; ++c) {
        for (int64_t i = 0; i < h; ++i) {
          std::copy_n(src + (c * h + i) * w, w, buf.data() + (c * p.hp + i + ph) * p.wp + pw);
        }
      }
      conv_sample(buf.data(), packed.data(), p, out + n * out_size);
    }
  }
}

}  // namespace

bool direct_conv_supported(const ConvGeometry& g) {
  return STRATA_DIRECT_CONV && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 &&
         g.dil_w == 1 && g.groups == 1 && g.kernel_h * g.kernel_w > 1 && g.pad_h < g.kernel_h &&
         g.pad_w < g.kernel_w && g.out_h == g.in_h + 2 * g.pad_h - g.kernel_h + 1 &&
         g.out_w == g.in_w + 2 * g.pad_w - g.kernel_w + 1 && g.out_w % kVec == 0 &&
         g.in_w % kVec == 0;
}

void direct_conv_forward(const float* x, const float* w, float* y, const ConvGeometry& g) {
  const int64_t kk = g.kernel_h * g.kernel_w, c_in = g.in_channels;
  Plan p{c_in,      g.out_channels, g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w,
         g.out_h,   g.out_w,        g.kernel_h,           g.kernel_w};
  auto packed = pack_weights(g.out_channels, c_in, kk, [&](int64_t o, int64_t i, int64_t k) {
    return w[(o * c_in + i) * kk + k];
  });
  run(x, g.batch, g.in_h, g.in_w, g.pad_h, g.pad_w, packed, p, y);
}

void direct_conv_input_grad(const float* gy, const float* w, float* gx, const ConvGeometry& g) {
  // gx is gy padded by (k - 1 - pad) and convolved with w transposed in its channels and
  // flipped in space.
  const int64_t kk = g.kernel_h * g.kernel_w, c_in = g.in_channels;
  const int64_t qh = g.kernel_h - 1 - g.pad_h, qw = g.kernel_w - 1 - g.pad_w;
  Plan p{g.out_channels, c_in,   g.out_h + 2 * qh, g.out_w + 2 * qw,
         g.in_h,         g.in_w, g.kernel_h,       g.kernel_w};
  auto packed = pack_weights(c_in, g.out_channels, kk, [&](int64_t o, int64_t i, int64_t k) {
    return w[(i * c_in + o) * kk + (kk - 1 - k)];
  });
  run(gy, g.batch, g.out_h, g.out_w, qh, qw, packed, p, gx);
}

}  // namespace strata::cpu
