// Indexing kernels on the GPU: the index range check (one atomicMin over positions),
// index_select (one thread per output element, raw bytes so one kernel serves every dtype of
// a size) and index_add, which sorts the indices stably and adds each run of repeated indices
// in position order: no atomics, so results are deterministic and equal the CPU's loop.
#include <algorithm>
#include <bit>
#include <cub/device/device_radix_sort.cuh>
#include "core/backend/cuda/handles.h"

#include "core/backend/cuda/index.h"
#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

__global__ void first_bad_kernel(const int64_t* idx, int64_t len, int64_t n,
                                 unsigned long long* first) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < len; i += step) {
    if (idx[i] < 0 || idx[i] >= n) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

template <class B>
__global__ void index_select_kernel(const B* x, const int64_t* idx, B* out, int64_t total,
                                    int64_t len, int64_t inner, int64_t rows) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t j = e % inner, r = e / inner, l = r % len, o = r / len;
    out[e] = x[(o * rows + idx[l]) * inner + j];
  }
}

/// a + b as the CPU's index_add accumulates it: bf16/f16 through f32, rounded at every step.
template <class T>
__device__ inline T accumulate(T a, T b) {
  if constexpr (is_half_type<T>) {
    return convert<T>(convert<float>(a) + convert<float>(b));
  } else if constexpr (std::is_same_v<T, bool>) {
    return a || b;
  } else {
    return static_cast<T>(a + b);
  }
}

__global__ void iota_kernel(int64_t* p, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) p[i] = i;
}

/// keys: the indices sorted; pos: their positions in the original index. The thread of the
/// first position of each run of equal keys adds the whole run, for one (outer, column).
template <class T>
__global__ void index_add_sorted_kernel(T* out, const int64_t* keys, const int64_t* pos,
                                        const T* src, int64_t total, int64_t len, int64_t inner,
                                        int64_t rows, int64_t skip) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t j = e % inner, r = e / inner, p = r % len, o = r / len;
    const int64_t key = keys[p];
    if (key == skip || (p > 0 && keys[p - 1] == key)) continue;
    T* dst = out + (o * rows + key) * inner + j;
    T acc = *dst;
    for (int64_t q = p; q < len && keys[q] == key; ++q) {
      acc = accumulate(acc, src[(o * len + pos[q]) * inner + j]);
    }
    *dst = acc;
  }
}

template <class B>
__global__ void gather_kernel(Strided<3> s, int64_t n, B* out, const int64_t* idx, const B* x,
                              int64_t dim_stride) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[3];
    s.offsets(i, off);
    out[off[0]] = x[off[2] + idx[off[1]] * dim_stride];
  }
}

/// One thread per position outside dim, walking dim in index order.
template <class T>
__global__ void scatter_kernel(Strided<3> s, int64_t n, T* out, const int64_t* idx, const T* src,
                               int64_t len, int64_t o_dim, int64_t i_dim, int64_t s_dim, bool add) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[3];
    s.offsets(i, off);
    for (int64_t j = 0; j < len; ++j) {
      T& dst = out[off[0] + idx[off[1] + j * i_dim] * o_dim];
      const T v = src[off[2] + j * s_dim];
      dst = add ? accumulate(dst, v) : v;
    }
  }
}

template <class B>
__global__ void upsample_kernel(const B* x, B* out, int64_t total, int64_t h, int64_t w, int64_t sh,
                                int64_t sw) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x, ow = w * sw, oh = h * sh;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t col = e % ow, row = (e / ow) % oh, plane = e / (ow * oh);
    out[e] = x[(plane * h + row / sh) * w + col / sw];
  }
}

Shape without(const Shape& s, int64_t dim) {
  Shape r = s;
  r.erase(r.begin() + dim);
  return r;
}

/// Calls fn(B{}) with an unsigned type of t's element size: copies need only the bits.
template <class Fn>
void visit_bits(const Tensor& t, Fn&& fn) {
  switch (dtype_size(t.dtype())) {
    case 1:
      return fn(uint8_t{});
    case 2:
      return fn(uint16_t{});
    case 4:
      return fn(uint32_t{});
    default:
      return fn(uint64_t{});
  }
}

void outer_inner(const Tensor& t, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= t.shape()[d];
  for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.shape()[d];
}

}  // namespace

int64_t first_out_of_range(const Tensor& index, int64_t n) {
  const int64_t len = index.numel();
  if (len == 0) return -1;
  cudaStream_t stream = stream_for(index.device());
  Tensor first = empty({1}, DType::i64, index.device());
  const unsigned long long none = ~0ull;
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(first.raw_data(), &none, sizeof(none), cudaMemcpyHostToDevice, stream));
  first_bad_kernel<<<blocks_for(len), kThreads, 0, stream>>>(cptr<int64_t>(index), len, n,
                                                             mptr<unsigned long long>(first));
  STRATA_CUDA_CHECK_LAUNCH("first_out_of_range");
  unsigned long long host = 0;
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(&host, first.raw_data(), sizeof(host), cudaMemcpyDeviceToHost, stream));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host == none ? -1 : static_cast<int64_t>(host);
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const int64_t n = index.numel();
  if (n == 0) return;
  Shape xs = x.strides();
  const int64_t dim_stride = xs[dim];
  xs[dim] = 0;  // the dim's contribution comes from the index value
  Shape xstrides(xs.begin(), xs.begin() + index.dim());
  Strided<3> s = make_strided<3>(index.shape(), {out.strides(), index.strides(), xstrides});
  visit_bits(x, [&](auto bits) {
    using B = decltype(bits);
    gather_kernel<B><<<blocks_for(n), kThreads, 0, stream_for(x.device())>>>(
        s, n, mptr<B>(out), cptr<int64_t>(index), cptr<B>(x), dim_stride);
  });
  STRATA_CUDA_CHECK_LAUNCH("gather");
}

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
             bool accumulate_values) {
  if (index.numel() == 0) return;
  const Shape outer = without(index.shape(), dim);
  Shape os;
  for (int64_t d = 0; d < out.dim(); ++d) {
    if (d != dim) os.push_back(out.strides()[d]);
  }
  Strided<3> s =
      make_strided<3>(outer, {os, without(index.strides(), dim), without(src.strides(), dim)});
  const int64_t n = numel_of(outer), len = index.shape()[dim];
  visit_device_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scatter_kernel<T><<<blocks_for(n), kThreads, 0, stream_for(out.device())>>>(
        s, n, mptr<T>(out), cptr<int64_t>(index), cptr<T>(src), len, out.strides()[dim],
        index.strides()[dim], src.strides()[dim], accumulate_values);
  });
  STRATA_CUDA_CHECK_LAUNCH("scatter");
}

void upsample_nearest2d(const Tensor& x, const Tensor& out, int64_t sh, int64_t sw) {
  const int64_t total = out.numel();
  if (total == 0) return;
  visit_bits(x, [&](auto bits) {
    using B = decltype(bits);
    upsample_kernel<B><<<blocks_for(total), kThreads, 0, stream_for(x.device())>>>(
        cptr<B>(x), mptr<B>(out), total, x.shape()[2], x.shape()[3], sh, sw);
  });
  STRATA_CUDA_CHECK_LAUNCH("upsample_nearest2d");
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  Tensor xc = x.contiguous();
  int64_t outer, inner;
  outer_inner(x, dim, outer, inner);
  const int64_t len = index.numel(), rows = x.shape()[dim], total = outer * len * inner;
  if (total == 0) return;
  cudaStream_t stream = stream_for(x.device());
  visit_bits(x, [&](auto bits) {
    using B = decltype(bits);
    index_select_kernel<B><<<blocks_for(total), kThreads, 0, stream>>>(
        cptr<B>(xc), cptr<int64_t>(index), mptr<B>(out), total, len, inner, rows);
  });
  STRATA_CUDA_CHECK_LAUNCH("index_select");
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
               int64_t skip) {
  int64_t outer, inner;
  outer_inner(out, dim, outer, inner);
  const int64_t len = index.numel(), rows = out.shape()[dim], total = outer * len * inner;
  if (total == 0) return;
  const Device device = out.device();
  cudaStream_t stream = stream_for(device);
  // Stable sort of (index, position); the op layer has checked 0 <= index < rows.
  Tensor keys = empty({len}, DType::i64, device), pos_in = empty({len}, DType::i64, device);
  Tensor pos = empty({len}, DType::i64, device);
  iota_kernel<<<blocks_for(len), kThreads, 0, stream>>>(mptr<int64_t>(pos_in), len);
  STRATA_CUDA_CHECK_LAUNCH("iota");
  const int end_bit = std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(rows))));
  size_t temp_bytes = 0;
  STRATA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, cptr<int64_t>(index),
                                                    mptr<int64_t>(keys), cptr<int64_t>(pos_in),
                                                    mptr<int64_t>(pos), len, 0, end_bit, stream));
  Tensor temp = empty({static_cast<int64_t>(std::max<size_t>(temp_bytes, 1))}, DType::u8, device);
  STRATA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      temp.raw_data(), temp_bytes, cptr<int64_t>(index), mptr<int64_t>(keys), cptr<int64_t>(pos_in),
      mptr<int64_t>(pos), len, 0, end_bit, stream));
  visit_device_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    index_add_sorted_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
        mptr<T>(out), cptr<int64_t>(keys), cptr<int64_t>(pos), cptr<T>(src), total, len, inner,
        rows, skip);
    STRATA_CUDA_CHECK_LAUNCH("index_add");
  });
}

}  // namespace strata::cuda
