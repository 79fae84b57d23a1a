// Device-side building blocks of the CUDA kernels: the dtype -> device type map, conversions
// that round like the CPU's, and map(): one launcher for every element-wise kernel (a
// vectorised flat path when operands are contiguous or scalars, a strided path otherwise).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/backend/cuda/context.h"
#include "core/backend/cuda/cuda_check.h"
#include "core/tensor.h"

namespace strata::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

/// Calls fn(T{}) with the device type of `t`: the one dtype switch per kernel launch.
template <class Fn>
decltype(auto) visit_device_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32:
      return fn(float{});
    case DType::f64:
      return fn(double{});
    case DType::bf16:
      return fn(bf16{});
    case DType::f16:
      return fn(f16{});
    case DType::i32:
      return fn(int32_t{});
    case DType::i64:
      return fn(int64_t{});
    case DType::u8:
      return fn(uint8_t{});
    case DType::b8:
      return fn(bool{});
  }
  return fn(float{});
}

/// Calls fn(T{}) for f32 or f64 tensors; anything else is a bug in the op layer.
template <class Fn>
void visit_floating(const Tensor& t, const char* kernel, Fn&& fn) {
  if (t.dtype() == DType::f64) return fn(double{});
  check_internal(t.dtype() == DType::f32, "CUDA kernel ", kernel, " called on ", t.desc());
  fn(float{});
}

template <class T>
constexpr bool is_half_type = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

/// Calls fn(T{}, P{}) for a tensor `t` of a floating dtype: T its element type and P the type
/// its arithmetic (and any statistics or losses kept beside it) uses: T, or f32 for bf16/f16,
/// which such kernels read and write as they are. `kept` (undefined to skip) must be of P's
/// dtype.
template <class Fn>
void visit_storage(const Tensor& t, const Tensor& kept, const char* kernel, Fn&& fn) {
  const bool half = t.dtype() == DType::bf16 || t.dtype() == DType::f16;
  check_internal(is_floating(t.dtype()) &&
                     (!kept.defined() || kept.dtype() == (half ? DType::f32 : t.dtype())),
                 "CUDA kernel ", kernel, " called on ", t.desc(), " with ",
                 kept.defined() ? kept.desc() : std::string("nothing kept"));
  visit_device_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_half_type<T>) {
      fn(T{}, float{});
    } else if constexpr (std::is_floating_point_v<T>) {
      fn(T{}, T{});
    }
  });
}

/// Element conversion; bf16 and f16 go through f32 (rounded to nearest even) as on the CPU.
template <class To, class From>
__host__ __device__ inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, bf16>) {
    return convert<To>(__bfloat162float(v));
  } else if constexpr (std::is_same_v<From, f16>) {
    return convert<To>(__half2float(v));
  } else if constexpr (std::is_same_v<To, bf16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, f16>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else {
    return static_cast<To>(v);
  }
}

template <class T>
const T* cptr(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}
template <class T>
T* mptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

constexpr int kThreads = 256;
constexpr int kMaxDims = 12;

/// Blocks for n work items at `threads` per block, capped for grid-stride loops.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (int64_t(1) << 20) ? (int64_t(1) << 20) : b));
}

/// Coalesced shape and per-operand strides; operand 0 is the output.
template <int N>
struct Strided {
  int nd = 0;
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];

  __device__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t q = i / size[d], r = i - q * size[d];
      i = q;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
    }
  }
};

/// Merges dims that are contiguous with each other in every operand (as cpu::coalesce);
/// strides[k] are operand k's strides over `shape`.
template <int N>
Strided<N> make_strided(const Shape& shape, const std::array<Shape, N>& strides) {
  Strided<N> s;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = s.nd > 0;
    for (int k = 0; k < N && merge; ++k) {
      merge = s.stride[k][s.nd - 1] == strides[k][d] * shape[d];
    }
    if (merge) {
      s.size[s.nd - 1] *= shape[d];
      for (int k = 0; k < N; ++k) s.stride[k][s.nd - 1] = strides[k][d];
    } else {
      check(s.nd < kMaxDims, "[cuda] tensors with more than ", kMaxDims,
            " non-mergeable dimensions are not supported; make them contiguous first");
      s.size[s.nd] = shape[d];
      for (int k = 0; k < N; ++k) s.stride[k][s.nd] = strides[k][d];
      ++s.nd;
    }
  }
  if (s.nd == 0) {
    s.nd = 1;
    s.size[0] = 1;
    for (int k = 0; k < N; ++k) s.stride[k][0] = 0;
  }
  return s;
}

template <int N>
Strided<N> make_strided(const Shape& shape, const std::array<const Tensor*, N>& ops) {
  std::array<Shape, N> strides;
  for (int k = 0; k < N; ++k) strides[k] = ops[k]->strides();
  return make_strided<N>(shape, strides);
}

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

/// An input of the flat path: contiguous, or one value broadcast to every element.
template <class T>
struct Flat {
  const T* p;
  bool scalar;
  template <int V>
  __device__ Pack<T, V> load(int64_t pack) const {
    Pack<T, V> r;
    if (scalar) {
      const T x = p[0];
#pragma unroll
      for (int j = 0; j < V; ++j) r.v[j] = x;
    } else {
      r = reinterpret_cast<const Pack<T, V>*>(p)[pack];
    }
    return r;
  }
  __device__ T at(int64_t i) const { return p[scalar ? 0 : i]; }
};

template <int V, class R, class Op, class... T>
__device__ inline void apply_pack(R* out, int64_t pack, const Op& op, const Pack<T, V>&... in) {
  Pack<R, V> r;
#pragma unroll
  for (int j = 0; j < V; ++j) r.v[j] = op(in.v[j]...);
  reinterpret_cast<Pack<R, V>*>(out)[pack] = r;
}

/// out[i] = op(in[i]...) over n elements with V-wide loads and stores (V = 1: scalar).
template <int V, class R, class Op, class... T>
__global__ void map_flat_kernel(int64_t n, R* out, Op op, Flat<T>... in) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / V;
  for (int64_t p = first; p < packs; p += step) {
    apply_pack<V>(out, p, op, in.template load<V>(p)...);
  }
  for (int64_t i = packs * V + first; i < n; i += step) out[i] = op(in.at(i)...);
}

template <class R, class Op, class... T, size_t... K>
__device__ inline void apply_strided(R* out, const int64_t* off, const Op& op,
                                     std::index_sequence<K...>, const T*... in) {
  out[off[0]] = op(in[off[K + 1]]...);
}

template <class R, class Op, class... T>
__global__ void map_strided_kernel(Strided<1 + sizeof...(T)> s, int64_t n, R* out, Op op,
                                   const T*... in) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[1 + sizeof...(T)];
    s.offsets(i, off);
    apply_strided(out, off, op, std::index_sequence_for<T...>{}, in...);
  }
}

inline bool aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

/// out = op(inputs...) element-wise on out's device; inputs have out's shape (expanded views
/// allowed) and the element types T...; R is out's element type.
template <class R, class... T, class Op>
void map(const char* name, const Tensor& out, Op op, const std::pair<const Tensor*, T>&... in) {
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t stream = stream_for(out.device());
  constexpr int N = 1 + sizeof...(T);
  Strided<N> s = make_strided<N>(out.shape(), {&out, in.first...});
  R* o = static_cast<R*>(out.raw_data());
  bool flat = s.nd == 1 && s.stride[0][0] == 1;
  for (int k = 1; k < N; ++k) flat = flat && (s.stride[k][0] == 1 || s.stride[k][0] == 0);
  if (flat) {
    int k = 0;
    auto flat_of = [&](const auto& p) {
      using U = std::remove_cv_t<decltype(p.second)>;
      ++k;
      return Flat<U>{static_cast<const U*>(p.first->raw_data()), s.stride[k][0] == 0};
    };
    std::tuple<Flat<T>...> f{flat_of(in)...};
    constexpr int V = 4;
    bool vec = aligned(o, sizeof(R) * V);
    std::apply(
        [&](const auto&... fi) {
          ((vec = vec && (fi.scalar || aligned(fi.p, sizeof(*fi.p) * V))), ...);
        },
        f);
    std::apply(
        [&](const auto&... fi) {
          if (vec) {
            map_flat_kernel<V><<<blocks_for(n / V + 1), kThreads, 0, stream>>>(n, o, op, fi...);
          } else {
            map_flat_kernel<1><<<blocks_for(n), kThreads, 0, stream>>>(n, o, op, fi...);
          }
        },
        f);
  } else {
    map_strided_kernel<R, Op, T...><<<blocks_for(n), kThreads, 0, stream>>>(
        s, n, o, op, static_cast<const T*>(in.first->raw_data())...);
  }
  STRATA_CUDA_CHECK_LAUNCH(name);
}

/// f over the 32 lanes of a warp (every lane gets the result).
template <class T, class F>
__device__ inline T warp_reduce(T v, F f) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// f over the whole block, returned to every thread; blockDim.x is a multiple of 32. Safe to
/// call repeatedly in one kernel (it synchronises before reusing its shared slots).
template <class T, class F>
__device__ inline T block_reduce(T v, F f, T identity) {
  __shared__ T warps[32];
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32;
  v = warp_reduce(v, f);
  __syncthreads();
  if (lane == 0) warps[w] = v;
  __syncthreads();
  if (w == 0) {
    T x = lane < nw ? warps[lane] : identity;
    x = warp_reduce(x, f);
    if (lane == 0) warps[0] = x;
  }
  __syncthreads();
  return warps[0];
}

struct Sum {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a > b || a != a ? a : b;
  }
};

template <class T>
__device__ inline T dexp(T v) {
  if constexpr (std::is_same_v<T, float>) {
    return ::expf(v);
  } else {
    return ::exp(v);
  }
}

/// Shorthand for map's operand list: the tensor and its element type.
template <class T>
std::pair<const Tensor*, T> arg(const Tensor& t) {
  return {&t, T{}};
}

}  // namespace strata::cuda
