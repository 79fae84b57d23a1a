// Tensor-core versions (WMMA 16x16x16, bf16/f16 inputs, f32 accumulators) of attention.cu's
// forward, dK/dV and dQ kernels, with the same semantics. A file of its own because
// attention.cu is near the size budget and the two tile schemes share only attention_mma.cuh.
#include <mma.h>

#include <initializer_list>
#include <limits>
#include <type_traits>

#include "core/backend/cuda/attention.h"
#include "core/backend/cuda/attention_mma.cuh"
#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

namespace wmma = nvcuda::wmma;

// A block of 4 warps owns 64 rows (queries in the forward and dQ kernels, keys in dK/dV), one
// 16-row WMMA tile per warp, and walks tiles of 64 rows of the other side. Every product is
// warp-local (a warp's 16 rows times a whole shared tile), so between the block-wide loads
// each warp touches only its own rows of S, dP, P, dS and the staging area.
constexpr int kWarps = 4;
constexpr int kWarpRows = 16;
constexpr int kBlockRows = kWarps * kWarpRows;  // 64
constexpr int kTileRows = 64;
constexpr int kThreadsPerBlock = kWarps * 32;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
template <class T>
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
template <class T>
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;
template <class T>
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major>;
constexpr int kFragElems = FragC::num_elements;

/// Leading dimensions (in elements) of the shared arrays. WMMA needs ldm % 8 == 0 for 16-bit
/// types and % 4 for f32, and 32-byte aligned tile pointers: with 128-byte aligned arrays and
/// tiles at row and column multiples of 16, any such ldm keeps every tile pointer aligned. The
/// +8 / +4 padding shifts consecutive rows by 16 bytes to spread them over the banks.
template <int DP>
struct Ld {
  static constexpr int kIn = DP + 8;        // T: q, k, v, dout rows (DP columns)
  static constexpr int kS = kTileRows + 4;  // f32: dP rows (kTileRows columns)
  static constexpr int kP = kTileRows + 8;  // T: P and dS rows (kTileRows columns)
  // f32: S rows (kTileRows columns), reused at the end to stage the DP output columns.
  static constexpr int kStage = (DP > kTileRows ? DP : kTileRows) + 4;
  static_assert(kIn % 8 == 0 && kP % 8 == 0 && kS % 4 == 0 && kStage % 4 == 0);
};

__host__ __device__ constexpr size_t round128(size_t bytes) { return (bytes + 127) / 128 * 128; }

/// Forward shared memory, byte offsets (each array 128-byte aligned). Sizes with T 2 bytes:
/// DP = 32: q, k, v 5 KiB each, S 17 KiB, P 9 KiB, mul 256 B: 41.25 KiB
/// DP = 64: q, k, v 9 KiB each, S 17 KiB, P 9 KiB, mul 256 B: 53.25 KiB
/// DP = 128: q, k, v 17 KiB each, S 33 KiB, P 9 KiB, mul 256 B: 93.25 KiB
template <class T, int DP>
struct ForwardSmem {
  using L = Ld<DP>;
  static constexpr size_t kQ = 0;                                                // (64, kIn) T
  static constexpr size_t kK = kQ + round128(kBlockRows * L::kIn * sizeof(T));   // (64, kIn) T
  static constexpr size_t kV = kK + round128(kTileRows * L::kIn * sizeof(T));    // (64, kIn) T
  static constexpr size_t kS = kV + round128(kTileRows * L::kIn * sizeof(T));    // (64, kStage) f32
  static constexpr size_t kP = kS + round128(kBlockRows * L::kStage * 4);        // (64, kP) T
  static constexpr size_t kMul = kP + round128(kBlockRows * L::kP * sizeof(T));  // (64) f32
  static constexpr size_t kBytes = kMul + round128(kBlockRows * 4);
  static_assert(kBytes <= 227 * 1024, "over the H100's 227 KiB of shared memory per block");
};

/// dK/dV and dQ shared memory: two arrays of the block's own rows (k, v or q, dout), two of
/// the current tile (q, dout or k, v), S, dP, P, dS and the tile's or block's lse and delta.
/// DP = 32: 4 x 5 KiB + S 17 + dP 17 + P 9 + dS 9 KiB + 512 B: 72.5 KiB
/// DP = 64: 4 x 9 KiB + S 17 + dP 17 + P 9 + dS 9 KiB + 512 B: 88.5 KiB
/// DP = 128: 4 x 17 KiB + S 33 + dP 17 + P 9 + dS 9 KiB + 512 B: 136.5 KiB
template <class T, int DP>
struct BackwardSmem {
  using L = Ld<DP>;
  static constexpr size_t kIn = round128(kBlockRows * L::kIn * sizeof(T));
  static_assert(kBlockRows == kTileRows, "own and tile arrays share one size");
  static constexpr size_t kOwn0 = 0, kOwn1 = kIn, kTile0 = 2 * kIn, kTile1 = 3 * kIn;
  static constexpr size_t kS = 4 * kIn;                                         // (64, kStage) f32
  static constexpr size_t kDP = kS + round128(kBlockRows * L::kStage * 4);      // (64, kS) f32
  static constexpr size_t kP = kDP + round128(kBlockRows * L::kS * 4);          // (64, kP) T
  static constexpr size_t kDS = kP + round128(kBlockRows * L::kP * sizeof(T));  // (64, kP) T
  static constexpr size_t kLse = kDS + round128(kBlockRows * L::kP * sizeof(T));  // (64) f32
  static constexpr size_t kDelta = kLse + round128(kBlockRows * 4);               // (64) f32
  static constexpr size_t kBytes = kDelta + round128(kBlockRows * 4);
  static_assert(kBytes <= 227 * 1024, "over the H100's 227 KiB of shared memory per block");
};

/// The array at byte `offset` of a kernel's dynamic shared memory (declared in each kernel as
/// mma_smem: a name apart from attention.cu's f32 `smem`, should the build ever link device
/// code across files).
template <class U>
__device__ inline U* at(unsigned char* smem, size_t offset) {
  return reinterpret_cast<U*>(smem + offset);
}

/// Rows [first, first + n) of a contiguous (total, d) slab into shared rows of stride LD, DP
/// columns each, zero beyond `total` rows and `d` columns; 16 bytes at a time when `vec`
/// (d % 8 == 0 and 16-byte aligned pointers: then c < d implies c + 8 <= d).
template <class T, int DP, int LD>
__device__ inline void load_tile(T* dst, const T* src, int64_t first, int n, int64_t total,
                                 int64_t d, bool vec) {
  constexpr int kVec = 16 / sizeof(T);
  static_assert(DP % kVec == 0 && LD % kVec == 0, "rows of whole 16-byte chunks");
  const T zero = convert<T>(0.f);
  for (int idx = threadIdx.x; idx < n * (DP / kVec); idx += blockDim.x) {
    const int r = idx / (DP / kVec), c = idx % (DP / kVec) * kVec;
    const int64_t row = first + r;
    T* out = dst + r * LD + c;
    if (vec && row < total && c < d) {
      *reinterpret_cast<uint4*>(out) = *reinterpret_cast<const uint4*>(src + row * d + c);
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e)
        out[e] = row < total && c + e < d ? src[row * d + c + e] : zero;
    }
  }
}

/// dst[t] = src[first + t] for t < n, `fill` where first + t >= total.
__device__ inline void load_vec(float* dst, const float* src, int64_t first, int n, int64_t total,
                                float fill) {
  for (int t = threadIdx.x; t < n; t += blockDim.x)
    dst[t] = first + t < total ? src[first + t] : fill;
}

/// dst (16, kTileRows) f32 = a (16, DP) * b^T for b (kTileRows, DP), all in shared memory;
/// b read as a col-major (DP, kTileRows) matrix_b: element (k, n) at b[n * ldb + k].
template <class T, int DP>
__device__ inline void mma_abt(float* dst, int ldd, const T* a, int lda, const T* b, int ldb) {
  FragC c[kTileRows / 16];
#pragma unroll
  for (int n = 0; n < kTileRows / 16; ++n) wmma::fill_fragment(c[n], 0.f);
#pragma unroll
  for (int kk = 0; kk < DP / 16; ++kk) {
    FragA<T> fa;
    wmma::load_matrix_sync(fa, a + 16 * kk, lda);
#pragma unroll
    for (int n = 0; n < kTileRows / 16; ++n) {
      FragBCol<T> fb;
      wmma::load_matrix_sync(fb, b + 16 * n * ldb + 16 * kk, ldb);
      wmma::mma_sync(c[n], fa, fb, c[n]);
    }
  }
#pragma unroll
  for (int n = 0; n < kTileRows / 16; ++n) {
    wmma::store_matrix_sync(dst + 16 * n, c[n], ldd, wmma::mem_row_major);
  }
}

/// acc[n] += a (16, kTileRows) * b (kTileRows, DP), acc[n] holding output columns 16n..16n+15.
template <class T, int DP>
__device__ inline void mma_ab(FragC (&acc)[DP / 16], const T* a, int lda, const T* b, int ldb) {
#pragma unroll
  for (int kk = 0; kk < kTileRows / 16; ++kk) {
    FragA<T> fa;
    wmma::load_matrix_sync(fa, a + 16 * kk, lda);
#pragma unroll
    for (int n = 0; n < DP / 16; ++n) {
      FragBRow<T> fb;
      wmma::load_matrix_sync(fb, b + 16 * kk * ldb + 16 * n, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

/// rows[e] = the row (0-15) of accumulator element e. WMMA's element layout is opaque, so it is
/// read through load_matrix_sync itself, from a 16 x 16 matrix whose entries are their row
/// numbers written to `scratch` (warp-private f32, stride LDS). Same for every FragC.
template <int LDS>
__device__ inline void fragment_rows(float* scratch, int (&rows)[kFragElems]) {
  const int lane = threadIdx.x % 32;
  for (int idx = lane; idx < 16 * 16; idx += 32) scratch[idx / 16 * LDS + idx % 16] = idx / 16;
  __syncwarp();
  FragC f;
  wmma::load_matrix_sync(f, scratch, LDS, wmma::mem_row_major);
#pragma unroll
  for (int e = 0; e < kFragElems; ++e) rows[e] = static_cast<int>(f.x[e]);
  __syncwarp();  // every lane has read scratch before anyone reuses it
}

/// Multiplies row r of every accumulator by mul[r] (shared, warp-private).
template <int N>
__device__ inline void scale_rows(FragC (&acc)[N], const int (&rows)[kFragElems],
                                  const float* mul) {
  float f[kFragElems];
#pragma unroll
  for (int e = 0; e < kFragElems; ++e) f[e] = mul[rows[e]];
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int e = 0; e < kFragElems; ++e) acc[n].x[e] *= f[e];
  }
}

template <int N>
__device__ inline void scale_all(FragC (&acc)[N], float s) {
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int e = 0; e < kFragElems; ++e) acc[n].x[e] *= s;
  }
}

/// Stages the warp's (16, DP) accumulators in `stage` (warp-private f32, stride LDS) and writes
/// rows [first, first + 16) below `total` of a (total, d) slab as T; columns >= d are dropped.
template <class T, int DP, int LDS>
__device__ inline void write_rows(T* dst, int64_t first, int64_t total, int64_t d,
                                  const FragC (&acc)[DP / 16], float* stage) {
  __syncwarp();  // every lane is done reading what `stage` held before
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) {
    wmma::store_matrix_sync(stage + 16 * n, acc[n], LDS, wmma::mem_row_major);
  }
  __syncwarp();
  const int lane = threadIdx.x % 32;
  for (int r = 0; r < kWarpRows && first + r < total; ++r) {
    for (int64_t c = lane; c < d; c += 32)
      dst[(first + r) * d + c] = convert<T>(stage[r * LDS + c]);
  }
}

/// End of the keys that rows [i0, i0 + kBlockRows) can attend: causal masks keys past the last.
__device__ inline int64_t key_end(const AttentionProblem& p, int64_t i0) {
  const int64_t i_last = (i0 + kBlockRows < p.Tq ? i0 + kBlockRows : p.Tq) - 1;
  return p.causal && i_last + 1 < p.Tk ? i_last + 1 : p.Tk;
}

/// One key tile of the online softmax for the warp's 16 query rows (first query i, first key
/// j0): lanes 2r and 2r + 1 share row r, each taking every other column. s (16, kTileRows) f32
/// holds q.k and is overwritten with the scaled, masked scores; P goes to pt (stride LDP) as T
/// and exp(m_old - m_new) to mul[r]; m and l are the row's running max and sum (in both lanes).
template <class T, int LDS, int LDP>
__device__ inline void softmax_tile(const AttentionProblem& p, int64_t bh, int64_t i, int64_t j0,
                                    float* s, T* pt, float* mul, float& m, float& l) {
  const int lane = threadIdx.x % 32, r = lane / 2, h = lane % 2;
  float* srow = s + r * LDS;
  T* prow = pt + r * LDP;
  float mx = kNegInf;
#pragma unroll 8
  for (int t = 0; t < kTileRows / 2; ++t) {
    const int c = 2 * t + h;
    const float x = attends(p, bh, i + r, j0 + c) ? srow[c] * p.scale : kNegInf;
    srow[c] = x;
    mx = fmaxf(mx, x);
  }
  const float m_new = fmaxf(m, fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1)));
  float sum = 0;
#pragma unroll 8
  for (int t = 0; t < kTileRows / 2; ++t) {
    const int c = 2 * t + h;
    const float pj = srow[c] == kNegInf ? 0.f : expf(srow[c] - m_new);
    prow[c] = convert<T>(pj);
    sum += pj;
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  const float alpha = m_new == kNegInf ? 1.f : expf(m - m_new);  // m = -inf: 0
  l = l * alpha + sum;
  m = m_new;
  if (h == 0) mul[r] = alpha;
}

template <class T, int DP>
__global__ void __launch_bounds__(kThreadsPerBlock)
    attention_forward_mma_kernel(AttentionProblem p, bool vec, const T* q, const T* k, const T* v,
                                 T* out, float* lse) {
  using S = ForwardSmem<T, DP>;
  using L = Ld<DP>;
  extern __shared__ __align__(128) unsigned char mma_smem[];
  T *qs = at<T>(mma_smem, S::kQ), *ks = at<T>(mma_smem, S::kK), *vs = at<T>(mma_smem, S::kV);
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* sw = at<float>(mma_smem, S::kS) + w * kWarpRows * L::kStage;  // the warp's rows
  T* pw = at<T>(mma_smem, S::kP) + w * kWarpRows * L::kP;
  float* mw = at<float>(mma_smem, S::kMul) + w * kWarpRows;
  const int64_t bh = blockIdx.y, i0 = int64_t(blockIdx.x) * kBlockRows, iw = i0 + w * kWarpRows;
  const int64_t qoff = bh * p.Tq * p.d, koff = bh * p.Tk * p.d;
  int rows[kFragElems];
  fragment_rows<L::kStage>(sw, rows);
  load_tile<T, DP, L::kIn>(qs, q + qoff, i0, kBlockRows, p.Tq, p.d, vec);
  FragC o[DP / 16];
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) wmma::fill_fragment(o[n], 0.f);
  float m = kNegInf, l = 0;
  const int64_t k_end = key_end(p, i0);
  for (int64_t j0 = 0; j0 < k_end; j0 += kTileRows) {
    __syncthreads();  // the previous tile is consumed (and qs is loaded)
    load_tile<T, DP, L::kIn>(ks, k + koff, j0, kTileRows, p.Tk, p.d, vec);
    load_tile<T, DP, L::kIn>(vs, v + koff, j0, kTileRows, p.Tk, p.d, vec);
    __syncthreads();
    mma_abt<T, DP>(sw, L::kStage, qs + w * kWarpRows * L::kIn, L::kIn, ks, L::kIn);
    __syncwarp();
    softmax_tile<T, L::kStage, L::kP>(p, bh, iw, j0, sw, pw, mw, m, l);
    __syncwarp();
    scale_rows(o, rows, mw);
    mma_ab<T, DP>(o, pw, L::kP, vs, L::kIn);
  }
  __syncwarp();  // every lane has read mw
  const int64_t i = iw + lane / 2;
  if (lane % 2 == 0) {
    mw[lane / 2] = l > 0 ? 1.f / l : 0.f;  // a row with no attended key outputs 0
    if (i < p.Tq) lse[bh * p.Tq + i] = l > 0 ? m + logf(l) : kNegInf;
  }
  __syncwarp();
  scale_rows(o, rows, mw);
  write_rows<T, DP, L::kStage>(out + qoff, iw, p.Tq, p.d, o, sw);
}

/// P and dS of the warp's 16 keys (rows, first key j) against a tile of queries (columns,
/// first query i0): p = exp(scale * s - lse_i), ds = p * (dp - delta_i), 0 where not attended.
/// Lanes take columns lane and lane + 32; lse and delta are the tile's (indexed by column).
template <class T, int LDS, int LDD, int LDP>
__device__ inline void probs_by_key(const AttentionProblem& p, int64_t bh, int64_t j, int64_t i0,
                                    const float* s, const float* dp, const float* lse,
                                    const float* delta, T* pt, T* dst) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int h = 0; h < kTileRows / 32; ++h) {
    const int c = lane + 32 * h;
    const float li = lse[c], di = delta[c];
#pragma unroll 4
    for (int r = 0; r < kWarpRows; ++r) {
      const bool ok = li != kNegInf && attends(p, bh, i0 + c, j + r);
      const float pij = ok ? expf(s[r * LDS + c] * p.scale - li) : 0.f;
      pt[r * LDP + c] = convert<T>(pij);
      dst[r * LDP + c] = convert<T>(pij * (dp[r * LDD + c] - di));
    }
  }
}

/// dS of the warp's 16 queries (rows, first query i) against a tile of keys (columns, first
/// key j0), as probs_by_key; lse and delta are the warp's (indexed by row).
template <class T, int LDS, int LDD, int LDP>
__device__ inline void probs_by_query(const AttentionProblem& p, int64_t bh, int64_t i, int64_t j0,
                                      const float* s, const float* dp, const float* lse,
                                      const float* delta, T* dst) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int h = 0; h < kTileRows / 32; ++h) {
    const int c = lane + 32 * h;
#pragma unroll 4
    for (int r = 0; r < kWarpRows; ++r) {
      const float li = lse[r];
      const bool ok = li != kNegInf && attends(p, bh, i + r, j0 + c);
      const float pij = ok ? expf(s[r * LDS + c] * p.scale - li) : 0.f;
      dst[r * LDP + c] = convert<T>(pij * (dp[r * LDD + c] - delta[r]));
    }
  }
}

template <class T, int DP>
__global__ void __launch_bounds__(kThreadsPerBlock)
    attention_dkdv_mma_kernel(AttentionProblem p, bool vec, const T* q, const T* k, const T* v,
                              const T* dout, const float* lse, const float* delta, T* dk, T* dv) {
  using S = BackwardSmem<T, DP>;
  using L = Ld<DP>;
  extern __shared__ __align__(128) unsigned char mma_smem[];
  T *ks = at<T>(mma_smem, S::kOwn0), *vs = at<T>(mma_smem, S::kOwn1);
  T *qs = at<T>(mma_smem, S::kTile0), *dos = at<T>(mma_smem, S::kTile1);
  float *lse_s = at<float>(mma_smem, S::kLse), *delta_s = at<float>(mma_smem, S::kDelta);
  const int w = threadIdx.x / 32;
  float* sw = at<float>(mma_smem, S::kS) + w * kWarpRows * L::kStage;  // S^T: keys x queries
  float* dpw = at<float>(mma_smem, S::kDP) + w * kWarpRows * L::kS;    // dP^T
  T* pw = at<T>(mma_smem, S::kP) + w * kWarpRows * L::kP;
  T* dsw = at<T>(mma_smem, S::kDS) + w * kWarpRows * L::kP;
  const int64_t bh = blockIdx.y, j0 = int64_t(blockIdx.x) * kBlockRows, jw = j0 + w * kWarpRows;
  const int64_t qoff = bh * p.Tq * p.d, koff = bh * p.Tk * p.d;
  load_tile<T, DP, L::kIn>(ks, k + koff, j0, kBlockRows, p.Tk, p.d, vec);
  load_tile<T, DP, L::kIn>(vs, v + koff, j0, kBlockRows, p.Tk, p.d, vec);
  FragC dka[DP / 16], dva[DP / 16];
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) {
    wmma::fill_fragment(dka[n], 0.f);
    wmma::fill_fragment(dva[n], 0.f);
  }
  // Causal: queries before the block's first key attend none of its keys.
  for (int64_t i0 = p.causal ? j0 / kTileRows * kTileRows : 0; i0 < p.Tq; i0 += kTileRows) {
    __syncthreads();  // the previous tile is consumed (and ks, vs are loaded)
    load_tile<T, DP, L::kIn>(qs, q + qoff, i0, kTileRows, p.Tq, p.d, vec);
    load_tile<T, DP, L::kIn>(dos, dout + qoff, i0, kTileRows, p.Tq, p.d, vec);
    load_vec(lse_s, lse + bh * p.Tq, i0, kTileRows, p.Tq, kNegInf);
    load_vec(delta_s, delta + bh * p.Tq, i0, kTileRows, p.Tq, 0.f);
    __syncthreads();
    mma_abt<T, DP>(sw, L::kStage, ks + w * kWarpRows * L::kIn, L::kIn, qs, L::kIn);
    mma_abt<T, DP>(dpw, L::kS, vs + w * kWarpRows * L::kIn, L::kIn, dos, L::kIn);
    __syncwarp();
    probs_by_key<T, L::kStage, L::kS, L::kP>(p, bh, jw, i0, sw, dpw, lse_s, delta_s, pw, dsw);
    __syncwarp();
    mma_ab<T, DP>(dva, pw, L::kP, dos, L::kIn);
    mma_ab<T, DP>(dka, dsw, L::kP, qs, L::kIn);
  }
  scale_all(dka, p.scale);
  write_rows<T, DP, L::kStage>(dv + koff, jw, p.Tk, p.d, dva, sw);
  write_rows<T, DP, L::kStage>(dk + koff, jw, p.Tk, p.d, dka, sw);
}

template <class T, int DP>
__global__ void __launch_bounds__(kThreadsPerBlock)
    attention_dq_mma_kernel(AttentionProblem p, bool vec, const T* q, const T* k, const T* v,
                            const T* dout, const float* lse, const float* delta, T* dq) {
  using S = BackwardSmem<T, DP>;
  using L = Ld<DP>;
  extern __shared__ __align__(128) unsigned char mma_smem[];
  T *qs = at<T>(mma_smem, S::kOwn0), *dos = at<T>(mma_smem, S::kOwn1);
  T *ks = at<T>(mma_smem, S::kTile0), *vs = at<T>(mma_smem, S::kTile1);
  const int w = threadIdx.x / 32;
  float* lw = at<float>(mma_smem, S::kLse) + w * kWarpRows;  // the warp's rows of lse and delta
  float* dw = at<float>(mma_smem, S::kDelta) + w * kWarpRows;
  float* sw = at<float>(mma_smem, S::kS) + w * kWarpRows * L::kStage;
  float* dpw = at<float>(mma_smem, S::kDP) + w * kWarpRows * L::kS;
  T* dsw = at<T>(mma_smem, S::kDS) + w * kWarpRows * L::kP;
  const int64_t bh = blockIdx.y, i0 = int64_t(blockIdx.x) * kBlockRows, iw = i0 + w * kWarpRows;
  const int64_t qoff = bh * p.Tq * p.d, koff = bh * p.Tk * p.d;
  load_tile<T, DP, L::kIn>(qs, q + qoff, i0, kBlockRows, p.Tq, p.d, vec);
  load_tile<T, DP, L::kIn>(dos, dout + qoff, i0, kBlockRows, p.Tq, p.d, vec);
  load_vec(at<float>(mma_smem, S::kLse), lse + bh * p.Tq, i0, kBlockRows, p.Tq, kNegInf);
  load_vec(at<float>(mma_smem, S::kDelta), delta + bh * p.Tq, i0, kBlockRows, p.Tq, 0.f);
  FragC dqa[DP / 16];
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) wmma::fill_fragment(dqa[n], 0.f);
  const int64_t k_end = key_end(p, i0);
  for (int64_t j0 = 0; j0 < k_end; j0 += kTileRows) {
    __syncthreads();  // the previous tile is consumed (and qs, dos, lse, delta are loaded)
    load_tile<T, DP, L::kIn>(ks, k + koff, j0, kTileRows, p.Tk, p.d, vec);
    load_tile<T, DP, L::kIn>(vs, v + koff, j0, kTileRows, p.Tk, p.d, vec);
    __syncthreads();
    mma_abt<T, DP>(sw, L::kStage, qs + w * kWarpRows * L::kIn, L::kIn, ks, L::kIn);
    mma_abt<T, DP>(dpw, L::kS, dos + w * kWarpRows * L::kIn, L::kIn, vs, L::kIn);
    __syncwarp();
    probs_by_query<T, L::kStage, L::kS, L::kP>(p, bh, iw, j0, sw, dpw, lw, dw, dsw);
    __syncwarp();
    mma_ab<T, DP>(dqa, dsw, L::kP, ks, L::kIn);
  }
  scale_all(dqa, p.scale);
  write_rows<T, DP, L::kStage>(dq + qoff, iw, p.Tq, p.d, dqa, sw);
}

/// Calls fn(T{}, integral_constant<DP>) for q's dtype (bf16 or f16) and its head dim padded to
/// 32, 64 or 128.
template <class Fn>
void visit_mma(const Tensor& q, Fn&& fn) {
  const int64_t d = q.size(3);
  check_internal(d <= kMaxAttentionHeadDim, "attention kernel called with head dim ", d);
  auto with_dim = [&](auto tag) {
    if (d <= 32) return fn(tag, std::integral_constant<int, 32>{});
    if (d <= 64) return fn(tag, std::integral_constant<int, 64>{});
    fn(tag, std::integral_constant<int, 128>{});
  };
  if (q.dtype() == DType::bf16) return with_dim(bf16{});
  check_internal(q.dtype() == DType::f16, "tensor-core attention called on ", q.desc());
  with_dim(f16{});
}

dim3 grid_of(const Tensor& q, int64_t rows) { return attention_grid(q, rows, kBlockRows); }

/// Whether every row of the (rows, d) slabs at `ptrs` can be read 16 bytes at a time.
bool rows_aligned(int64_t d, std::initializer_list<const void*> ptrs) {
  bool ok = d % 8 == 0;
  for (const void* ptr : ptrs) ok = ok && aligned(ptr, 16);
  return ok;
}

/// Launches `kernel` with `bytes` of dynamic shared memory (raising the 48 KiB default).
template <class Kernel, class... Args>
void launch(const char* name, Kernel kernel, dim3 grid, size_t bytes, cudaStream_t stream,
            Args... args) {
  if (grid.x == 0 || grid.y == 0) return;
  STRATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)));
  kernel<<<grid, kThreadsPerBlock, bytes, stream>>>(args...);
  STRATA_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

void attention_forward_mma(const AttentionProblem& p, const Tensor& q, const Tensor& k,
                           const Tensor& v, const Tensor& out, const Tensor& lse,
                           cudaStream_t stream) {
  const bool vec = rows_aligned(p.d, {q.raw_data(), k.raw_data(), v.raw_data()});
  visit_mma(q, [&](auto tag, auto dp) {
    using T = decltype(tag);
    constexpr int DP = decltype(dp)::value;
    launch("attention_forward_mma", attention_forward_mma_kernel<T, DP>, grid_of(q, p.Tq),
           ForwardSmem<T, DP>::kBytes, stream, p, vec, cptr<T>(q), cptr<T>(k), cptr<T>(v),
           mptr<T>(out), mptr<float>(lse));
  });
}

void attention_backward_mma(const AttentionProblem& p, const Tensor& q, const Tensor& k,
                            const Tensor& v, const Tensor& dout, const Tensor& lse,
                            const Tensor& delta, const Tensor& dq, const Tensor& dk,
                            const Tensor& dv, cudaStream_t stream) {
  const bool vec = rows_aligned(p.d, {q.raw_data(), k.raw_data(), v.raw_data(), dout.raw_data()});
  visit_mma(q, [&](auto tag, auto dp) {
    using T = decltype(tag);
    constexpr int DP = decltype(dp)::value;
    const size_t bytes = BackwardSmem<T, DP>::kBytes;
    launch("attention_backward_dkdv_mma", attention_dkdv_mma_kernel<T, DP>, grid_of(q, p.Tk), bytes,
           stream, p, vec, cptr<T>(q), cptr<T>(k), cptr<T>(v), cptr<T>(dout), cptr<float>(lse),
           cptr<float>(delta), mptr<T>(dk), mptr<T>(dv));
    launch("attention_backward_dq_mma", attention_dq_mma_kernel<T, DP>, grid_of(q, p.Tq), bytes,
           stream, p, vec, cptr<T>(q), cptr<T>(k), cptr<T>(v), cptr<T>(dout), cptr<float>(lse),
           cptr<float>(delta), mptr<T>(dq));
  });
}

}  // namespace strata::cuda
