// Reductions on the GPU as a [K, R] problem like the CPU's: rows (R contiguous) get one block
// each (several when there are few rows) and a shared-memory tree; columns (K contiguous) get one
// thread each walking R, so loads stay coalesced. f32 sums accumulate in f64; max/min propagate
// NaN; argmax keeps the first maximum and lets the first NaN win, as on the CPU.
#include <algorithm>
#include <limits>

#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/reduce.h"

namespace strata::cuda {
namespace {

template <class T>
__device__ inline bool is_nan(T v) {
  return v != v;
}

template <class T>
struct SumOp {
  using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
  using Out = T;
  __device__ Acc identity() const { return Acc(0); }
  __device__ Acc load(T v, int64_t) const { return Acc(v); }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ Out finish(Acc a) const { return T(a); }
};

template <class T>
struct ExtremeOp {
  using Acc = T;
  using Out = T;
  bool is_max;
  __device__ Acc identity() const {
    if constexpr (std::is_floating_point_v<T>) {
      return is_max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    } else {
      return is_max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    }
  }
  __device__ Acc load(T v, int64_t) const { return v; }
  __device__ Acc combine(Acc a, Acc b) const {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return is_max ? (b > a ? b : a) : (b < a ? b : a);
  }
  __device__ Out finish(Acc a) const { return a; }
};

template <class T>
struct ArgmaxOp {
  struct Acc {
    T v;
    int64_t i;
  };
  using Out = int64_t;
  __device__ Acc identity() const {
    if constexpr (std::is_floating_point_v<T>) {
      return {-std::numeric_limits<T>::infinity(), std::numeric_limits<int64_t>::max()};
    } else {
      return {std::numeric_limits<T>::lowest(), std::numeric_limits<int64_t>::max()};
    }
  }
  __device__ Acc load(T v, int64_t i) const { return {v, i}; }
  __device__ Acc combine(Acc a, Acc b) const {
    const bool na = is_nan(a.v), nb = is_nan(b.v);
    if (na != nb) return na ? a : b;
    if (na || a.v == b.v) return a.i <= b.i ? a : b;
    return a.v > b.v ? a : b;
  }
  __device__ Out finish(Acc a) const { return a.i; }
};

/// One block per row k of x (K, R) with row stride sk and column stride sr. With `part`, block
/// row blockIdx.y reduces only columns [y * chunk, (y + 1) * chunk) into part[y][k], which
/// reduce_cols_finish combines in split order: a few long rows (a whole-tensor sum has one)
/// still fill the GPU, and the result does not depend on scheduling.
template <class T, class Op>
__global__ void reduce_rows_kernel(const T* x, int64_t K, int64_t R, int64_t sk, int64_t sr,
                                   int64_t chunk, typename Op::Acc* part, typename Op::Out* out,
                                   Op op) {
  __shared__ typename Op::Acc buf[kThreads];
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    const T* row = x + k * sk;
    typename Op::Acc acc = op.identity();
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x)
      acc = op.combine(acc, op.load(row[r * sr], r));
    buf[threadIdx.x] = acc;
    __syncthreads();
    for (int width = blockDim.x / 2; width > 0; width /= 2) {
      if (threadIdx.x < width)
        buf[threadIdx.x] = op.combine(buf[threadIdx.x], buf[threadIdx.x + width]);
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (part) {
        part[blockIdx.y * K + k] = buf[0];
      } else {
        out[k] = op.finish(buf[0]);
      }
    }
    __syncthreads();
  }
}

/// One thread per kept element k, walking rows [r0, r1) of x[k * sk + r * sr]: coalesced when
/// sk == 1 (columns), and better than a block per row when rows are short.
template <class T, class Op>
__device__ typename Op::Acc reduce_run(const T* x, int64_t k, int64_t r0, int64_t r1, int64_t sk,
                                       int64_t sr, const Op& op) {
  typename Op::Acc acc = op.identity();
  for (int64_t r = r0; r < r1; ++r) acc = op.combine(acc, op.load(x[k * sk + r * sr], r));
  return acc;
}

template <class T, class Op>
__global__ void reduce_cols_kernel(const T* x, int64_t K, int64_t R, int64_t sk, int64_t sr,
                                   typename Op::Out* out, Op op) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += step) {
    out[k] = op.finish(reduce_run(x, k, 0, R, sk, sr, op));
  }
}

/// Split rows: block row blockIdx.y reduces rows [y * chunk, (y + 1) * chunk) into part[y][k].
template <class T, class Op>
__global__ void reduce_cols_partial(const T* x, int64_t K, int64_t R, int64_t sk, int64_t sr,
                                    int64_t chunk, typename Op::Acc* part, Op op) {
  const int64_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += step) {
    part[blockIdx.y * K + k] = reduce_run(x, k, r0, r1, sk, sr, op);
  }
}

/// Combines the partials in split order, so results do not depend on scheduling.
template <class Op>
__global__ void reduce_cols_finish(const typename Op::Acc* part, int64_t K, int64_t splits,
                                   typename Op::Out* out, Op op) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += step) {
    typename Op::Acc acc = part[k];
    for (int64_t s = 1; s < splits; ++s) acc = op.combine(acc, part[s * K + k]);
    out[k] = op.finish(acc);
  }
}

/// Long rows: a block per row, and with fewer rows than about 4 blocks per SM each row is split
/// over grid.y (at least 4096 elements a block) and the partials combined in split order.
template <class T, class Op>
void launch_rows(const T* xp, int64_t K, int64_t R, int64_t sk, int64_t sr, const Tensor& out,
                 Op op) {
  using Acc = typename Op::Acc;
  cudaStream_t stream = stream_for(out.device());
  auto* op_out = static_cast<typename Op::Out*>(out.raw_data());
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(K, 65535));
  const int64_t want = 4 * static_cast<int64_t>(sm_count(out.device()));
  const int64_t splits = K >= want ? 1 : std::min<int64_t>((want + K - 1) / K, (R + 4095) / 4096);
  if (splits <= 1) {
    reduce_rows_kernel<T><<<grid, kThreads, 0, stream>>>(xp, K, R, sk, sr, R, nullptr, op_out, op);
    STRATA_CUDA_CHECK_LAUNCH("reduce_rows");
    return;
  }
  const int64_t chunk = (R + splits - 1) / splits, ys = (R + chunk - 1) / chunk;
  Tensor part = empty({ys * K * static_cast<int64_t>(sizeof(Acc))}, DType::u8, out.device());
  Acc* pp = static_cast<Acc*>(part.raw_data());
  reduce_rows_kernel<T><<<dim3(grid, static_cast<unsigned>(ys)), kThreads, 0, stream>>>(
      xp, K, R, sk, sr, chunk, pp, op_out, op);
  STRATA_CUDA_CHECK_LAUNCH("reduce_rows (split rows)");
  reduce_cols_finish<<<blocks_for(K), kThreads, 0, stream>>>(pp, K, ys, op_out, op);
  STRATA_CUDA_CHECK_LAUNCH("reduce_rows_finish");
}

/// Rows of length R get a block each when long; otherwise (and for columns) a thread per kept
/// element, with the rows split over grid.y when K alone gives too few threads.
template <class T, class Op>
void launch(const Tensor& v, int64_t K, int64_t R, const Tensor& out, Op op) {
  using Acc = typename Op::Acc;
  cudaStream_t stream = stream_for(out.device());
  const T* xp = static_cast<const T*>(v.raw_data());
  auto* op_out = static_cast<typename Op::Out*>(out.raw_data());
  const int64_t sk = v.strides()[0], sr = v.strides()[1];
  if (R > 32 && !(sk == 1 && K > 1)) return launch_rows<T>(xp, K, R, sk, sr, out, op);
  const int64_t splits =
      R <= 64 ? 1 : std::min<int64_t>({(R + 63) / 64, std::max<int64_t>(1, (1 << 18) / K), 256});
  if (splits == 1) {
    reduce_cols_kernel<T><<<blocks_for(K), kThreads, 0, stream>>>(xp, K, R, sk, sr, op_out, op);
    STRATA_CUDA_CHECK_LAUNCH("reduce_cols");
    return;
  }
  const int64_t chunk = (R + splits - 1) / splits;
  Tensor part = empty({splits * K * static_cast<int64_t>(sizeof(Acc))}, DType::u8, out.device());
  Acc* pp = static_cast<Acc*>(part.raw_data());
  dim3 grid(blocks_for(K), static_cast<unsigned>((R + chunk - 1) / chunk));
  reduce_cols_partial<T><<<grid, kThreads, 0, stream>>>(xp, K, R, sk, sr, chunk, pp, op);
  STRATA_CUDA_CHECK_LAUNCH("reduce_cols_partial");
  reduce_cols_finish<<<blocks_for(K), kThreads, 0, stream>>>(pp, K, int64_t(grid.y), op_out, op);
  STRATA_CUDA_CHECK_LAUNCH("reduce_cols_finish");
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  std::vector<int64_t> order;
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) reduced[d] = true;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!reduced[d]) order.push_back(d);
  }
  int64_t K = 1, R = 1;
  for (int64_t d = 0; d < x.dim(); ++d) (reduced[d] ? R : K) *= x.shape()[d];
  for (int64_t d : dims) order.push_back(d);
  if (R == 0) {
    check(op == ReduceOp::sum, "[reduce] max/min/argmax over an empty dimension of ", x.desc());
    fill(out, 0.0);
    return;
  }
  if (K == 0) return;
  Tensor p = x.detach().permute(order);
  Tensor v;
  try {
    Tensor kr = p.reshape({K, R});
    v = kr.storage() == p.storage() ? kr : p.contiguous().reshape({K, R});
  } catch (const Error&) {
    v = p.contiguous().reshape({K, R});
  }
  // Coalesced loads need a unit stride along rows or columns; anything else is copied first.
  if (v.strides()[1] != 1 && v.strides()[0] != 1 && R > 1) {
    v = v.contiguous();
  }
  visit_device_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> ||
                  std::is_same_v<T, int64_t> || std::is_same_v<T, int32_t>) {
      switch (op) {
        case ReduceOp::sum:
          return launch<T>(v, K, R, out, SumOp<T>{});
        case ReduceOp::max:
        case ReduceOp::min:
          return launch<T>(v, K, R, out, ExtremeOp<T>{op == ReduceOp::max});
        case ReduceOp::argmax:
          return launch<T>(v, K, R, out, ArgmaxOp<T>{});
      }
    } else {
      check_internal(false, "CUDA reduce kernel called on ", x.desc());
    }
  });
}

}  // namespace strata::cuda
