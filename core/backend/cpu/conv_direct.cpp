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

/// How the weight-gradient tile walks gy (samples, c_out, ho, wo) against the padded input.
struct GyWalk {
  int64_t rows, vecs_per_row;  // per plane
  int64_t x_pitch, g_pitch;    // floats between rows
  int64_t g_sample;            // floats between samples of gy
};

/// acc (rows, taps, 8 lanes) += the lane-wise sums over all pixels of the gy rows times the
/// input shifted by each tap's offset; the lanes are summed once at the very end.
void weight_grad_tile(const float* in, const float* const* gy_rows, const int64_t* tap_off,
                      const Plan& p, const GyWalk& w, int64_t samples, float* const* acc_rows) {
  __m256 acc[kMr][kMaxNv];
  for (int r = 0; r < kMr; ++r) {
    for (int t = 0; t < kMaxNv; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  const int64_t in_size = p.c_in * p.hp * p.wp;
  for (int64_t s = 0; s < samples; ++s) {
    for (int64_t row = 0; row < w.rows; ++row) {
      const float* xr = in + s * in_size + row * w.x_pitch;
      const int64_t go = s * w.g_sample + row * w.g_pitch;
      for (int64_t q = 0; q < w.vecs_per_row * kVec; q += kVec) {
        __m256 xv[kMaxNv];
        for (int t = 0; t < kMaxNv; ++t) xv[t] = _mm256_loadu_ps(xr + q + tap_off[t]);
        for (int r = 0; r < kMr; ++r) {
          __m256 g = _mm256_loadu_ps(gy_rows[r] + go + q);
          for (int t = 0; t < kMaxNv; ++t) acc[r][t] = _mm256_fmadd_ps(g, xv[t], acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < kMr; ++r) {
    for (int t = 0; t < kMaxNv; ++t) {
      float* a = acc_rows[r * kMaxNv + t];
      _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), acc[r][t]));
    }
  }
}

/// acc (c_out, c_in, kh * kw, 8 lanes) += the weight gradient of `samples` padded samples
/// `in` (samples, c_in, hp, wp) against their output gradients gy (samples, c_out, ho, wo).
/// Rows past c_out and taps past kh * kw repeat a valid one
/// and land in a scratch slot.
void weight_grad_samples(const float* in, const float* gy, const Plan& p, int64_t samples,
                         float* acc, float* scratch) {
  const int64_t kk = p.kh * p.kw;
  const GyWalk walk{p.ho, p.wo / kVec, p.wp, p.wo, p.c_out * p.ho * p.wo};
  for (int64_t cb = 0; cb < p.c_out; cb += kMr) {
    const float* gy_rows[kMr];
    for (int64_t r = 0; r < kMr; ++r) gy_rows[r] = gy + std::min(cb + r, p.c_out - 1) * p.ho * p.wo;
    for (int64_t c = 0; c < p.c_in; ++c) {
      for (int64_t t0 = 0; t0 < kk; t0 += kMaxNv) {
        int64_t tap_off[kMaxNv];
        float* acc_rows[kMr * kMaxNv];
        for (int64_t t = 0; t < kMaxNv; ++t) {
          const int64_t tap = std::min(t0 + t, kk - 1);
          tap_off[t] = tap / p.kw * p.wp + tap % p.kw;
          for (int64_t r = 0; r < kMr; ++r) {
            const bool real = cb + r < p.c_out && t0 + t < kk;
            acc_rows[r * kMaxNv + t] =
                real ? acc + (((cb + r) * p.c_in + c) * kk + t0 + t) * kVec : scratch;
          }
        }
        weight_grad_tile(in + c * p.hp * p.wp, gy_rows, tap_off, p, walk, samples, acc_rows);
      }
    }
  }
}
#else
void conv_sample(const float*, const float*, const Plan&, float*) {}
void weight_grad_samples(const float*, const float*, const Plan&, int64_t, float*, float*) {}
#endif

/// n zeroed floats in the calling thread's scratch `slot`, kept across calls: these kernels
/// run every step with the same sizes, and fresh buffers of this size cost page faults (and
/// the kernel's page clearing) on every call.
float* zeroed_scratch(int slot, int64_t n) {
  thread_local std::vector<float> slots[2];
  std::vector<float>& b = slots[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  std::fill_n(b.data(), n, 0.0f);
  return b.data();
}

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

/// Copies sample x (c, h, w) into buf, channel ch at buf + ch * plane, rows of pitch wp,
/// starting at row ph and column pw.
void pad_into(const float* x, int64_t c, int64_t h, int64_t w, int64_t ph, int64_t pw,
              int64_t plane, int64_t wp, float* buf) {
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < h; ++i) {
      // Vector moves, not memcpy: rows are 8 to 32 floats, where a call costs more.
      const float* src = x + (ch * h + i) * w;
      float* dst = buf + ch * plane + (i + ph) * wp + pw;
      int64_t j = 0;
#if STRATA_DIRECT_CONV
      for (; j + kVec <= w; j += kVec) _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
#endif
      for (; j < w; ++j) dst[j] = src[j];
    }
  }
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
    float* buf = zeroed_scratch(0, p.c_in * p.hp * p.wp);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < batch; ++n) {
      pad_into(in + n * in_size, p.c_in, h, w, ph, pw, p.hp * p.wp, p.wp, buf);
      conv_sample(buf, packed.data(), p, out + n * out_size);
    }
  }
}

}  // namespace

bool direct_conv_built() { return STRATA_DIRECT_CONV; }

bool direct_conv_supported(const ConvGeometry& g) {
  return STRATA_DIRECT_CONV && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
         g.groups == 1 && g.kernel_h * g.kernel_w > 1 && g.pad_h < g.kernel_h &&
         g.pad_w < g.kernel_w && g.out_h == g.in_h + 2 * g.pad_h - g.kernel_h + 1 &&
         g.out_w == g.in_w + 2 * g.pad_w - g.kernel_w + 1 && g.out_w % kVec == 0 &&
         g.in_w % kVec == 0;
}

void direct_conv_forward(const float* x, const float* w, float* y, const ConvGeometry& g) {
  const int64_t kk = g.kernel_h * g.kernel_w, c_in = g.in_channels;
  Plan p{c_in,    g.out_channels, g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w,
         g.out_h, g.out_w,        g.kernel_h,           g.kernel_w};
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

void direct_conv_weight_grad(const float* x, const float* gy, float* gw, const ConvGeometry& g) {
  const int64_t kk = g.kernel_h * g.kernel_w, c_in = g.in_channels, c_out = g.out_channels;
  Plan p{c_in,    c_out,   g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w,
         g.out_h, g.out_w, g.kernel_h,           g.kernel_w};
  const int64_t wsize = c_out * c_in * kk, in_size = c_in * g.in_h * g.in_w;
  const int64_t out_size = c_out * g.out_h * g.out_w;
  const int nt = omp_get_max_threads();
  // Per thread, per weight: 8 lanes of partial sums, reduced once at the end.
  float* partial = zeroed_scratch(1, nt * (wsize + 1) * kVec);
  const int64_t work = out_size * c_in * kk, padded = c_in * p.hp * p.wp;
  // Small planes are taken a few samples at a time so that each tile runs long enough to
  // pay for loading and storing its accumulators.
  const int64_t group = std::clamp<int64_t>(1024 / (g.out_h * g.out_w), 1, 16);
  const int64_t groups = (g.batch + group - 1) / group;
#pragma omp parallel if (groups > 1 && g.batch * work >= kParallelGrain)
  {
    float* buf = zeroed_scratch(0, group * padded);  // borders stay zero
    float* acc = partial + omp_get_thread_num() * (wsize + 1) * kVec;
#pragma omp for schedule(static)
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t n0 = gi * group, count = std::min(group, g.batch - n0);
      for (int64_t s = 0; s < count; ++s) {
        pad_into(x + (n0 + s) * in_size, c_in, g.in_h, g.in_w, g.pad_h, g.pad_w, p.hp * p.wp, p.wp,
                 buf + s * padded);
      }
      weight_grad_samples(buf, gy + n0 * out_size, p, count, acc, acc + wsize * kVec);
    }
  }
#pragma omp parallel for if (wsize * nt * kVec >= kParallelGrain) schedule(static)
  for (int64_t i = 0; i < wsize; ++i) {
    float s = 0;
    for (int t = 0; t < nt; ++t) {
      const float* a = partial + (t * (wsize + 1) + i) * kVec;
      for (int64_t l = 0; l < kVec; ++l) s += a[l];
    }
    gw[i] = s;
  }
}

}  // namespace strata::cpu
