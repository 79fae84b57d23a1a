// FlashAttention-2 style attention on CUDA cores with f32 accumulation, for f32: bf16 and f16
// go to the tensor-core kernels of attention_mma.cu (a second file: this one is near the size
// budget). A block owns 16 rows (4 warps x 4 rows: queries in the forward and dQ kernels, keys
// in the dK/dV kernel) and walks tiles of 32 rows of the other side, one per lane, staged in
// shared memory as f32 (padded by one float so that a lane per row reads conflict-free). No
// atomics: dQ and dK/dV are separate passes that both recompute P from the saved log-sum-exp.
#include <limits>
#include <type_traits>

#include "core/backend/cuda/attention.h"
#include "core/backend/cuda/attention_mma.cuh"
#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRows = 4;                    // rows per warp
constexpr int kBlockRows = kWarps * kRows;  // rows per block
constexpr int kTile = 32;                   // rows of the other side per tile: one per lane
constexpr int kBlockThreads = kWarps * 32;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// Rows [first, first + n) of a (rows_total, d) slab into shared f32 rows of stride LD, the
/// first DP floats of each filled (zero beyond rows_total and d).
template <class T, int DP, int LD>
__device__ inline void load_rows(float* dst, const T* src, int64_t first, int n, int64_t rows_total,
                                 int64_t d) {
  for (int idx = threadIdx.x; idx < n * DP; idx += blockDim.x) {
    const int r = idx / DP, c = idx % DP;
    const int64_t row = first + r;
    dst[r * LD + c] = (row < rows_total && c < d) ? convert<float>(src[row * d + c]) : 0.f;
  }
}

/// s[r] = dot(block rows (warp * kRows + r) of `own` (stride DP), row `lane` of `tile`).
template <int DP>
__device__ inline void dots(const float* own, const float* tile_row, float (&s)[kRows]) {
  const int w = threadIdx.x / 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r) s[r] = 0;
#pragma unroll 8
  for (int c = 0; c < DP; ++c) {
    const float t = tile_row[c];
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] += own[(w * kRows + r) * DP + c] * t;
  }
}

/// acc[r][c] += sum_j weight[r][j] * tile[j][lane + 32 c] over the tile's 32 rows.
template <int DP, int LD>
__device__ inline void accumulate(const float* weight, const float* tile,
                                  float (&acc)[kRows][DP / 32]) {
  const int lane = threadIdx.x % 32;
  for (int j = 0; j < kTile; ++j) {
    float t[DP / 32];
#pragma unroll
    for (int c = 0; c < DP / 32; ++c) t[c] = tile[j * LD + lane + 32 * c];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float wr = weight[r * kTile + j];
#pragma unroll
      for (int c = 0; c < DP / 32; ++c) acc[r][c] += wr * t[c];
    }
  }
}

/// Writes rows (first + warp * kRows + r) of acc * mul, as T, into a (rows_total, d) slab.
template <class T, int DP>
__device__ inline void store_rows(T* dst, int64_t first, int64_t rows_total, int64_t d,
                                  const float (&acc)[kRows][DP / 32], const float (&mul)[kRows]) {
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = first + w * kRows + r;
    if (row >= rows_total) continue;
#pragma unroll
    for (int c = 0; c < DP / 32; ++c) {
      const int col = lane + 32 * c;
      if (col < d) dst[row * d + col] = convert<T>(acc[r][c] * mul[r]);
    }
  }
}

template <class T, int DP>
__global__ void __launch_bounds__(kBlockThreads)
    attention_forward_kernel(AttentionProblem p, const T* q, const T* k, const T* v, T* out,
                             float* lse) {
  extern __shared__ float smem[];
  constexpr int LD = DP + 1;
  float* qs = smem;                  // (kBlockRows, DP)
  float* ks = qs + kBlockRows * DP;  // (kTile, LD)
  float* vs = ks + kTile * LD;       // (kTile, LD)
  float* ps = vs + kTile * LD;       // (kWarps, kRows, kTile)
  const int64_t bh = blockIdx.y, i0 = int64_t(blockIdx.x) * kBlockRows;
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qoff = bh * p.Tq * p.d, koff = bh * p.Tk * p.d;
  load_rows<T, DP, DP>(qs, q + qoff, i0, kBlockRows, p.Tq, p.d);
  float m[kRows], l[kRows], acc[kRows][DP / 32];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = kNegInf;
    l[r] = 0;
#pragma unroll
    for (int c = 0; c < DP / 32; ++c) acc[r][c] = 0;
  }
  const int64_t i_last = (i0 + kBlockRows < p.Tq ? i0 + kBlockRows : p.Tq) - 1;
  const int64_t k_end = p.causal && i_last + 1 < p.Tk ? i_last + 1 : p.Tk;
  float* pw = ps + w * kRows * kTile;
  for (int64_t j0 = 0; j0 < k_end; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and qs is loaded)
    load_rows<T, DP, LD>(ks, k + koff, j0, kTile, p.Tk, p.d);
    load_rows<T, DP, LD>(vs, v + koff, j0, kTile, p.Tk, p.d);
    __syncthreads();
    float s[kRows];
    dots<DP>(qs, ks + lane * LD, s);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const bool ok = attends(p, bh, i0 + w * kRows + r, j0 + lane);
      const float sr = ok ? s[r] * p.scale : kNegInf;
      const float m_new = fmaxf(m[r], warp_reduce(sr, Max{}));
      const float pj = ok ? expf(sr - m_new) : 0.f;
      const float alpha = m_new == kNegInf ? 1.f : expf(m[r] - m_new);  // m = -inf: 0
      l[r] = l[r] * alpha + warp_reduce(pj, Sum{});
      m[r] = m_new;
#pragma unroll
      for (int c = 0; c < DP / 32; ++c) acc[r][c] *= alpha;
      pw[r * kTile + lane] = pj;
    }
    __syncwarp();
    accumulate<DP, LD>(pw, vs, acc);
    __syncwarp();
  }
  float inv[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    inv[r] = l[r] > 0 ? 1.f / l[r] : 0.f;  // a row with no attended key outputs 0
    const int64_t i = i0 + w * kRows + r;
    if (lane == 0 && i < p.Tq) lse[bh * p.Tq + i] = l[r] > 0 ? m[r] + logf(l[r]) : kNegInf;
  }
  store_rows<T, DP>(out + qoff, i0, p.Tq, p.d, acc, inv);
}

/// delta[row] = sum_c dout[row, c] * out[row, c]: one warp per row.
template <class T>
__global__ void attention_delta_kernel(int64_t rows, int64_t d, const T* dout, const T* out,
                                       float* delta) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x % 32;
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
       row += warps) {
    float s = 0;
    for (int64_t c = lane; c < d; c += 32) {
      s += convert<float>(dout[row * d + c]) * convert<float>(out[row * d + c]);
    }
    s = warp_reduce(s, Sum{});
    if (lane == 0) delta[row] = s;
  }
}

/// P and dS of this lane's query i against the warp's kRows keys (dK/dV kernel) or of the
/// warp's kRows queries against this lane's key (dQ kernel): p = exp(scale * s - lse),
/// ds = p * (dp - delta), 0 where not attended.
__device__ inline void probs(const AttentionProblem& p, bool ok, float s, float dp, float lse,
                             float delta, float& pij, float& dsij) {
  ok = ok && lse != kNegInf;
  pij = ok ? expf(s * p.scale - lse) : 0.f;
  dsij = pij * (dp - delta);
}

template <class T, int DP>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dkdv_kernel(AttentionProblem p, const T* q, const T* k, const T* v, const T* dout,
                          const float* lse, const float* delta, T* dk, T* dv) {
  extern __shared__ float smem[];
  constexpr int LD = DP + 1;
  float* ks = smem;                  // (kBlockRows, DP): this block's keys
  float* vs = ks + kBlockRows * DP;  // (kBlockRows, DP)
  float* qs = vs + kBlockRows * DP;  // (kTile, LD): a tile of queries
  float* dos = qs + kTile * LD;      // (kTile, LD)
  float* ps = dos + kTile * LD;      // (kWarps, kRows, kTile)
  float* dss = ps + kWarps * kRows * kTile;
  const int64_t bh = blockIdx.y, j0 = int64_t(blockIdx.x) * kBlockRows;
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qoff = bh * p.Tq * p.d, koff = bh * p.Tk * p.d;
  load_rows<T, DP, DP>(ks, k + koff, j0, kBlockRows, p.Tk, p.d);
  load_rows<T, DP, DP>(vs, v + koff, j0, kBlockRows, p.Tk, p.d);
  float dk_acc[kRows][DP / 32] = {}, dv_acc[kRows][DP / 32] = {};
  float* pw = ps + w * kRows * kTile;
  float* dsw = dss + w * kRows * kTile;
  // Causal: queries before the block's first key attend none of its keys.
  for (int64_t i0 = p.causal ? (j0 / kTile) * kTile : 0; i0 < p.Tq; i0 += kTile) {
    __syncthreads();
    load_rows<T, DP, LD>(qs, q + qoff, i0, kTile, p.Tq, p.d);
    load_rows<T, DP, LD>(dos, dout + qoff, i0, kTile, p.Tq, p.d);
    __syncthreads();
    const int64_t i = i0 + lane;
    const float li = i < p.Tq ? lse[bh * p.Tq + i] : kNegInf;
    const float di = i < p.Tq ? delta[bh * p.Tq + i] : 0.f;
    float s[kRows], dp[kRows];
    dots<DP>(ks, qs + lane * LD, s);
    dots<DP>(vs, dos + lane * LD, dp);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      probs(p, attends(p, bh, i, j0 + w * kRows + r), s[r], dp[r], li, di, pw[r * kTile + lane],
            dsw[r * kTile + lane]);
    }
    __syncwarp();
    accumulate<DP, LD>(pw, dos, dv_acc);
    accumulate<DP, LD>(dsw, qs, dk_acc);
    __syncwarp();
  }
  float one[kRows], scale[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    one[r] = 1.f;
    scale[r] = p.scale;
  }
  store_rows<T, DP>(dv + koff, j0, p.Tk, p.d, dv_acc, one);
  store_rows<T, DP>(dk + koff, j0, p.Tk, p.d, dk_acc, scale);
}

template <class T, int DP>
__global__ void __launch_bounds__(kBlockThreads)
    attention_dq_kernel(AttentionProblem p, const T* q, const T* k, const T* v, const T* dout,
                        const float* lse, const float* delta, T* dq) {
  extern __shared__ float smem[];
  constexpr int LD = DP + 1;
  float* qs = smem;                   // (kBlockRows, DP): this block's queries
  float* dos = qs + kBlockRows * DP;  // (kBlockRows, DP)
  float* ks = dos + kBlockRows * DP;  // (kTile, LD): a tile of keys
  float* vs = ks + kTile * LD;        // (kTile, LD)
  float* dss = vs + kTile * LD;       // (kWarps, kRows, kTile)
  const int64_t bh = blockIdx.y, i0 = int64_t(blockIdx.x) * kBlockRows;
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qoff = bh * p.Tq * p.d, koff = bh * p.Tk * p.d;
  load_rows<T, DP, DP>(qs, q + qoff, i0, kBlockRows, p.Tq, p.d);
  load_rows<T, DP, DP>(dos, dout + qoff, i0, kBlockRows, p.Tq, p.d);
  float lr[kRows], dr[kRows], dq_acc[kRows][DP / 32] = {};
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = i0 + w * kRows + r;
    lr[r] = i < p.Tq ? lse[bh * p.Tq + i] : kNegInf;
    dr[r] = i < p.Tq ? delta[bh * p.Tq + i] : 0.f;
  }
  const int64_t i_last = (i0 + kBlockRows < p.Tq ? i0 + kBlockRows : p.Tq) - 1;
  const int64_t k_end = p.causal && i_last + 1 < p.Tk ? i_last + 1 : p.Tk;
  float* dsw = dss + w * kRows * kTile;
  for (int64_t j0 = 0; j0 < k_end; j0 += kTile) {
    __syncthreads();
    load_rows<T, DP, LD>(ks, k + koff, j0, kTile, p.Tk, p.d);
    load_rows<T, DP, LD>(vs, v + koff, j0, kTile, p.Tk, p.d);
    __syncthreads();
    float s[kRows], dp[kRows];
    dots<DP>(qs, ks + lane * LD, s);
    dots<DP>(dos, vs + lane * LD, dp);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float pij;
      probs(p, attends(p, bh, i0 + w * kRows + r, j0 + lane), s[r], dp[r], lr[r], dr[r], pij,
            dsw[r * kTile + lane]);
    }
    __syncwarp();
    accumulate<DP, LD>(dsw, ks, dq_acc);
    __syncwarp();
  }
  float scale[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) scale[r] = p.scale;
  store_rows<T, DP>(dq + qoff, i0, p.Tq, p.d, dq_acc, scale);
}

AttentionProblem problem_of(const Tensor& q, const Tensor& k, const Tensor& mask, bool causal,
                            double scale) {
  AttentionProblem p;
  p.H = q.size(1);
  p.Tq = q.size(2);
  p.Tk = k.size(2);
  p.d = q.size(3);
  p.scale = static_cast<float>(scale);
  p.causal = causal;
  if (mask.defined()) {
    p.mask = cptr<bool>(mask);
    for (int i = 0; i < 4; ++i) p.ms[i] = mask.strides()[i];
  }
  return p;
}

/// Calls fn(integral_constant<DP>) with f32 q's head dim padded to 32, 64 or 128.
template <class Fn>
void visit_head_dim(const Tensor& q, Fn&& fn) {
  const int64_t d = q.size(3);
  check_internal(d <= kMaxAttentionHeadDim, "attention kernel called with head dim ", d);
  check_internal(q.dtype() == DType::f32, "CUDA-core attention called on ", q.desc());
  if (d <= 32) return fn(std::integral_constant<int, 32>{});
  if (d <= 64) return fn(std::integral_constant<int, 64>{});
  fn(std::integral_constant<int, 128>{});
}

/// delta (B, H, Tq) = rowsum(dout * out), for every dtype the kernels take.
void launch_delta(const Tensor& dout, const Tensor& out, const Tensor& delta, cudaStream_t stream) {
  const int64_t rows = delta.numel(), d = out.size(3);
  if (rows == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    attention_delta_kernel<T><<<blocks_for(rows * 32), kThreads, 0, stream>>>(
        rows, d, cptr<T>(dout), cptr<T>(out), mptr<float>(delta));
    STRATA_CUDA_CHECK_LAUNCH("attention_delta");
  };
  switch (out.dtype()) {
    case DType::f32:
      return run(float{});
    case DType::bf16:
      return run(bf16{});
    case DType::f16:
      return run(f16{});
    default:
      check_internal(false, "attention kernel called on ", out.desc());
  }
}

dim3 grid_of(const Tensor& q, int64_t rows) { return attention_grid(q, rows, kBlockRows); }

/// Launches `kernel` with `floats` of dynamic shared memory (raising the 48 KiB default).
template <class Kernel, class... Args>
void launch(const char* name, Kernel kernel, dim3 grid, size_t floats, cudaStream_t stream,
            Args... args) {
  if (grid.x == 0 || grid.y == 0) return;
  const size_t bytes = floats * sizeof(float);
  STRATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)));
  kernel<<<grid, kBlockThreads, bytes, stream>>>(args...);
  STRATA_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       bool causal, double scale, const Tensor& out, const Tensor& lse) {
  const AttentionProblem p = problem_of(q, k, mask, causal, scale);
  cudaStream_t stream = stream_for(q.device());
  if (q.dtype() != DType::f32) return attention_forward_mma(p, q, k, v, out, lse, stream);
  visit_head_dim(q, [&](auto dp) {
    constexpr int DP = decltype(dp)::value;
    const size_t floats = kBlockRows * DP + 2 * kTile * (DP + 1) + kWarps * kRows * kTile;
    launch("attention_forward", attention_forward_kernel<float, DP>, grid_of(q, p.Tq), floats,
           stream, p, cptr<float>(q), cptr<float>(k), cptr<float>(v), mptr<float>(out),
           mptr<float>(lse));
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        bool causal, double scale, const Tensor& out, const Tensor& lse,
                        const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const AttentionProblem p = problem_of(q, k, mask, causal, scale);
  cudaStream_t stream = stream_for(q.device());
  Tensor delta = empty({q.size(0), q.size(1), p.Tq}, DType::f32, q.device());  // (B, H, Tq)
  launch_delta(dout, out, delta, stream);
  if (q.dtype() != DType::f32) {
    return attention_backward_mma(p, q, k, v, dout, lse, delta, dq, dk, dv, stream);
  }
  visit_head_dim(q, [&](auto dp) {
    using T = float;
    constexpr int DP = decltype(dp)::value;
    const size_t dkdv_floats =
        2 * kBlockRows * DP + 2 * kTile * (DP + 1) + 2 * kWarps * kRows * kTile;
    launch("attention_backward_dkdv", attention_dkdv_kernel<T, DP>, grid_of(q, p.Tk), dkdv_floats,
           stream, p, cptr<T>(q), cptr<T>(k), cptr<T>(v), cptr<T>(dout), cptr<float>(lse),
           cptr<float>(delta), mptr<T>(dk), mptr<T>(dv));
    const size_t dq_floats = 2 * kBlockRows * DP + 2 * kTile * (DP + 1) + kWarps * kRows * kTile;
    launch("attention_backward_dq", attention_dq_kernel<T, DP>, grid_of(q, p.Tq), dq_floats, stream,
           p, cptr<T>(q), cptr<T>(k), cptr<T>(v), cptr<T>(dout), cptr<float>(lse),
           cptr<float>(delta), mptr<T>(dq));
  });
}

}  // namespace strata::cuda
