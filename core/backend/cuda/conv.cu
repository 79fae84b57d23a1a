// 2-D convolution through cuDNN's legacy API: descriptors from the geometry, then the first
// deterministic algorithm of cuDNN's heuristics (so that a resumed run repeats every bit) that
// computes in the dtype's math and fits its workspace, which comes from the stream-ordered
// allocator. f32 and f64 use plain FMAs (no TF32: f32 must match the CPU reference); bf16 and
// f16 (autocast) use tensor cores with f32 accumulation, and fall back to f32 copies where
// cuDNN offers no such algorithm.
#include <limits>
#include <vector>

#include "core/backend/cuda/context.h"
#include "core/backend/cuda/conv.h"
#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/cudnn_handles.h"
#include "core/backend/cuda/elementwise.h"

namespace strata::cuda {
namespace {

constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

int as_int(int64_t v, const char* what) {
  check(v >= 0 && v <= std::numeric_limits<int>::max(), "[conv2d] ", what, " ", v,
        " exceeds cuDNN's int range; split the batch");
  return static_cast<int>(v);
}

bool half_type(const Tensor& t) { return t.dtype() == DType::bf16 || t.dtype() == DType::f16; }

cudnnDataType_t data_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f64:
      return CUDNN_DATA_DOUBLE;
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    case DType::f16:
      return CUDNN_DATA_HALF;
    default:
      check_internal(false, "cuDNN convolution called on ", t.desc());
      return CUDNN_DATA_FLOAT;
  }
}

/// The descriptors of one convolution: input x, output y, filter w, and the convolution.
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
};

/// Descriptors for tensors of `like`'s dtype; the convolution computes in f64 for f64, else f32.
void describe(ConvDescriptors& d, const cpu::ConvGeometry& g, const Tensor& like) {
  const cudnnDataType_t t = data_type(like);
  const cudnnDataType_t compute = t == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  STRATA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
      d.x.get(), CUDNN_TENSOR_NCHW, t, as_int(g.batch, "batch"), as_int(g.in_channels, "channels"),
      as_int(g.in_h, "height"), as_int(g.in_w, "width")));
  STRATA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
      d.y.get(), CUDNN_TENSOR_NCHW, t, as_int(g.batch, "batch"), as_int(g.out_channels, "channels"),
      as_int(g.out_h, "height"), as_int(g.out_w, "width")));
  STRATA_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
      d.w.get(), t, CUDNN_TENSOR_NCHW, as_int(g.out_channels, "channels"),
      as_int(g.in_channels / g.groups, "channels"), as_int(g.kernel_h, "kernel"),
      as_int(g.kernel_w, "kernel")));
  STRATA_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
      d.conv.get(), as_int(g.pad_h, "padding"), as_int(g.pad_w, "padding"),
      as_int(g.stride_h, "stride"), as_int(g.stride_w, "stride"), as_int(g.dil_h, "dilation"),
      as_int(g.dil_w, "dilation"), CUDNN_CROSS_CORRELATION, compute));
  STRATA_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d.conv.get(), as_int(g.groups, "groups")));
  STRATA_CUDNN_CHECK(cudnnSetConvolutionMathType(
      d.conv.get(), half_type(like) ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
}

/// Whether a candidate computes in the math `t` asks for: plain FMAs for f32 (on Ampere and
/// later the default math of f32 means TF32) and f64 (which has no other), anything for
/// bf16/f16 (tensor cores, or FMAs where those do not apply).
bool math_fits(cudnnMathType_t math, const Tensor& t) {
  if (half_type(t)) return true;
  return math == CUDNN_FMA_MATH || (t.dtype() == DType::f64 && math == CUDNN_DEFAULT_MATH);
}

/// The first of cuDNN's ranked candidates that ran, is deterministic (atomics-free: a resumed
/// run must repeat every bit), fits the math of `t` and the workspace cap; null when none does.
template <class Perf>
const Perf* pick(const std::vector<Perf>& perf, int returned, const Tensor& t) {
  for (int i = 0; i < returned; ++i) {
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
        math_fits(perf[i].mathType, t) && perf[i].memory <= kMaxWorkspaceBytes) {
      return &perf[i];
    }
  }
  return nullptr;
}

[[noreturn]] void no_algorithm(const char* op, const Tensor& t) {
  throw Error(str_cat("[conv2d] cuDNN offers no deterministic ", dtype_name(t.dtype()),
                      " algorithm for the ", op,
                      " pass within the 1 GiB workspace cap; run the convolution on the CPU "
                      "(device: cpu)"));
}

/// Runs `pass(x, w_or_gy, out)` (false when cuDNN has no algorithm for the dtype) and, for
/// bf16/f16 that cuDNN cannot do, again on f32 copies with the result cast back.
template <class Pass>
void with_f32_fallback(const char* op, const Tensor& a, const Tensor& b, const Tensor& out,
                       Pass&& pass) {
  if (pass(a, b, out)) return;
  if (!half_type(out)) no_algorithm(op, out);
  Tensor out32 = empty(out.shape(), DType::f32, out.device());
  if (!pass(a.to(DType::f32), b.to(DType::f32), out32)) no_algorithm(op, out32);
  copy(out32, out);
}

/// A workspace of `bytes` on `device`, freed in stream order after the call that uses it.
Tensor workspace(size_t bytes, Device device) {
  return empty({static_cast<int64_t>(bytes > 0 ? bytes : 1)}, DType::u8, device);
}

/// Calls fn(one, zero) with cuDNN's scaling factors in the compute type of `t`.
template <class Fn>
void with_scalars(const Tensor& t, Fn&& fn) {
  if (t.dtype() == DType::f64) {
    const double one = 1, zero = 0;
    fn(&one, &zero);
  } else {
    const float one = 1, zero = 0;
    fn(&one, &zero);
  }
}

/// out (N, C, H, W) += bias (C) broadcast over N, H and W (every dtype, in place).
void add_bias(const Tensor& bias, const Tensor& out) {
  if (!bias.defined()) return;
  check_internal(bias.dtype() == out.dtype(), "conv bias ", bias.desc(), " for ", out.desc());
  binary(BinaryOp::add, out, bias.reshape({1, bias.numel(), 1, 1}).expand(out.shape()), out);
}

/// One cuDNN pass for tensors of `like`'s dtype: the descriptors, cuDNN's ranked candidates
/// from `find(h, d, perf, &returned)`, and `run(h, d, best, workspace, one, zero)` with the
/// chosen one; false when none qualifies. (Each callback checks its own cuDNN call, so that
/// errors name it.)
template <class Perf, class Find, class Run>
bool cudnn_pass(const cpu::ConvGeometry& g, const Tensor& like, int candidates, Find&& find,
                Run&& run) {
  cudnnHandle_t h = cudnn_for(like.device());
  ConvDescriptors d;
  describe(d, g, like);
  std::vector<Perf> perf(candidates);
  int returned = 0;
  find(h, d, perf, &returned);
  const Perf* best = pick(perf, returned, like);
  if (!best) return false;
  Tensor ws = workspace(best->memory, like.device());
  with_scalars(like, [&](const void* one, const void* zero) { run(h, d, *best, ws, one, zero); });
  return true;
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const cpu::ConvGeometry& g) {
  if (y.numel() == 0) return;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  with_f32_fallback("forward", x, w, y, [&](const Tensor& x, const Tensor& w, const Tensor& y) {
    return cudnn_pass<Perf>(
        g, x, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
        [&](cudnnHandle_t h, ConvDescriptors& d, std::vector<Perf>& perf, int* returned) {
          STRATA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
              h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), static_cast<int>(perf.size()),
              returned, perf.data()));
        },
        [&](cudnnHandle_t h, ConvDescriptors& d, const Perf& best, const Tensor& ws,
            const void* one, const void* zero) {
          STRATA_CUDNN_CHECK(cudnnConvolutionForward(
              h, one, d.x.get(), x.raw_data(), d.w.get(), w.raw_data(), d.conv.get(), best.algo,
              ws.raw_data(), best.memory, zero, d.y.get(), y.raw_data()));
        });
  });
  add_bias(bias, y);
}

void conv2d_input_grad(const Tensor& gy, const Tensor& w, const Tensor& bias, const Tensor& gx,
                       const cpu::ConvGeometry& g) {
  if (gx.numel() == 0) return;
  if (gy.numel() == 0) {  // no output positions (cuDNN rejects empty tensors): bias only
    fill(gx, 0.0);
    return add_bias(bias, gx);
  }
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  with_f32_fallback(
      "input-gradient", gy, w, gx, [&](const Tensor& gy, const Tensor& w, const Tensor& gx) {
        return cudnn_pass<Perf>(
            g, gy, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
            [&](cudnnHandle_t h, ConvDescriptors& d, std::vector<Perf>& perf, int* returned) {
              STRATA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                  h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), static_cast<int>(perf.size()),
                  returned, perf.data()));
            },
            [&](cudnnHandle_t h, ConvDescriptors& d, const Perf& best, const Tensor& ws,
                const void* one, const void* zero) {
              STRATA_CUDNN_CHECK(cudnnConvolutionBackwardData(
                  h, one, d.w.get(), w.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(),
                  best.algo, ws.raw_data(), best.memory, zero, d.x.get(), gx.raw_data()));
            });
      });
  add_bias(bias, gx);
}

void conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Tensor& gw,
                        const cpu::ConvGeometry& g) {
  if (gw.numel() == 0) return;
  if (x.numel() == 0 || gy.numel() == 0) return fill(gw, 0.0);  // an empty batch: no gradient
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  with_f32_fallback(
      "weight-gradient", x, gy, gw, [&](const Tensor& x, const Tensor& gy, const Tensor& gw) {
        return cudnn_pass<Perf>(
            g, x, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
            [&](cudnnHandle_t h, ConvDescriptors& d, std::vector<Perf>& perf, int* returned) {
              STRATA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                  h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), static_cast<int>(perf.size()),
                  returned, perf.data()));
            },
            [&](cudnnHandle_t h, ConvDescriptors& d, const Perf& best, const Tensor& ws,
                const void* one, const void* zero) {
              STRATA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
                  h, one, d.x.get(), x.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(),
                  best.algo, ws.raw_data(), best.memory, zero, d.w.get(), gw.raw_data()));
            });
      });
}

}  // namespace strata::cuda
