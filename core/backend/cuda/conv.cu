// 2-D convolution through cuDNN's legacy API: descriptors from the geometry, the first
// algorithm of cuDNN's heuristics that computes with plain FMAs (no TF32: f32 must match the
// CPU reference) and fits its workspace, which comes from the stream-ordered allocator.
#include <limits>
#include <vector>

#include "core/backend/cuda/context.h"
#include "core/backend/cuda/conv.h"
#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/cudnn_handles.h"

namespace strata::cuda {
namespace {

constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

int as_int(int64_t v, const char* what) {
  check(v >= 0 && v <= std::numeric_limits<int>::max(), "[conv2d] ", what, " ", v,
        " exceeds cuDNN's int range; split the batch");
  return static_cast<int>(v);
}

cudnnDataType_t data_type(const Tensor& t) {
  if (t.dtype() == DType::f64) return CUDNN_DATA_DOUBLE;
  check_internal(t.dtype() == DType::f32, "cuDNN convolution called on ", t.desc());
  return CUDNN_DATA_FLOAT;
}

/// The descriptors of one convolution: input x, output y, filter w, and the convolution.
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
};

void describe(ConvDescriptors& d, const cpu::ConvGeometry& g, cudnnDataType_t t) {
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
      as_int(g.dil_w, "dilation"), CUDNN_CROSS_CORRELATION, t));
  STRATA_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d.conv.get(), as_int(g.groups, "groups")));
  STRATA_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), CUDNN_FMA_MATH));
}

/// The first of cuDNN's ranked candidates that ran, uses FMA math (on Ampere and later the
/// default math of f32 means TF32; f64 has no such mode) and fits the workspace cap; `op`
/// names the pass for the error when none qualifies.
template <class Perf>
const Perf& pick(const std::vector<Perf>& perf, int returned, const Tensor& t, const char* op) {
  const bool f64 = t.dtype() == DType::f64;
  for (int i = 0; i < returned; ++i) {
    const bool fma =
        perf[i].mathType == CUDNN_FMA_MATH || (f64 && perf[i].mathType == CUDNN_DEFAULT_MATH);
    if (perf[i].status == CUDNN_STATUS_SUCCESS && fma && perf[i].memory <= kMaxWorkspaceBytes) {
      return perf[i];
    }
  }
  throw Error(str_cat("[conv2d] cuDNN offers no FMA algorithm for the ", op, " pass (", returned,
                      " candidates); run the convolution on the CPU (device: cpu)"));
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

/// out (N, C, H, W) += bias (C) broadcast over N, H and W.
void add_bias(cudnnHandle_t h, const Tensor& bias, const Tensor& out) {
  if (!bias.defined()) return;
  TensorDescriptor o, b;
  STRATA_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(o.get(), CUDNN_TENSOR_NCHW, data_type(out),
                                 as_int(out.size(0), "batch"), as_int(out.size(1), "channels"),
                                 as_int(out.size(2), "height"), as_int(out.size(3), "width")));
  STRATA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(b.get(), CUDNN_TENSOR_NCHW, data_type(bias), 1,
                                                as_int(bias.numel(), "channels"), 1, 1));
  with_scalars(out, [&](const void* one, const void*) {
    STRATA_CUDNN_CHECK(
        cudnnAddTensor(h, one, b.get(), bias.raw_data(), one, o.get(), out.raw_data()));
  });
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const cpu::ConvGeometry& g) {
  if (y.numel() == 0) return;
  cudnnHandle_t h = cudnn_for(x.device());
  ConvDescriptors d;
  describe(d, g, data_type(x));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  int returned = 0;
  STRATA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
      h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), static_cast<int>(perf.size()), &returned,
      perf.data()));
  const auto& best = pick(perf, returned, x, "forward");
  Tensor ws = workspace(best.memory, x.device());
  with_scalars(x, [&](const void* one, const void* zero) {
    STRATA_CUDNN_CHECK(cudnnConvolutionForward(h, one, d.x.get(), x.raw_data(), d.w.get(),
                                               w.raw_data(), d.conv.get(), best.algo, ws.raw_data(),
                                               best.memory, zero, d.y.get(), y.raw_data()));
  });
  add_bias(h, bias, y);
}

void conv2d_input_grad(const Tensor& gy, const Tensor& w, const Tensor& bias, const Tensor& gx,
                       const cpu::ConvGeometry& g) {
  if (gx.numel() == 0) return;
  if (gy.numel() == 0) {  // no output positions (cuDNN rejects empty tensors): bias only
    fill(gx, 0.0);
    return add_bias(cudnn_for(gy.device()), bias, gx);
  }
  cudnnHandle_t h = cudnn_for(gy.device());
  ConvDescriptors d;
  describe(d, g, data_type(gy));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  int returned = 0;
  STRATA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
      h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), static_cast<int>(perf.size()), &returned,
      perf.data()));
  const auto& best = pick(perf, returned, gy, "input-gradient");
  Tensor ws = workspace(best.memory, gy.device());
  with_scalars(gy, [&](const void* one, const void* zero) {
    STRATA_CUDNN_CHECK(cudnnConvolutionBackwardData(
        h, one, d.w.get(), w.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(), best.algo,
        ws.raw_data(), best.memory, zero, d.x.get(), gx.raw_data()));
  });
  add_bias(h, bias, gx);
}

void conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Tensor& gw,
                        const cpu::ConvGeometry& g) {
  if (gw.numel() == 0) return;
  if (x.numel() == 0 || gy.numel() == 0) return fill(gw, 0.0);  // an empty batch: no gradient
  cudnnHandle_t h = cudnn_for(x.device());
  ConvDescriptors d;
  describe(d, g, data_type(x));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  int returned = 0;
  STRATA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), static_cast<int>(perf.size()), &returned,
      perf.data()));
  const auto& best = pick(perf, returned, x, "weight-gradient");
  Tensor ws = workspace(best.memory, x.device());
  with_scalars(x, [&](const void* one, const void* zero) {
    STRATA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        h, one, d.x.get(), x.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(), best.algo,
        ws.raw_data(), best.memory, zero, d.w.get(), gw.raw_data()));
  });
}

}  // namespace strata::cuda
