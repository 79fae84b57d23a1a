// 2-D convolution through cuDNN's legacy API: descriptors from the geometry, then the first
// deterministic algorithm of cuDNN's heuristics (so that a resumed run repeats every bit) that
// computes in the dtype's math, fits its workspace (from the stream-ordered allocator) and
// runs, chosen once per pass and geometry and then reused from the device's plans. f32 and f64 use
// plain FMAs (no TF32: f32 must match the CPU reference); bf16 and f16 (autocast) use tensor cores
// with f32 accumulation, and fall back to f32 copies where cuDNN offers no such algorithm.
#include <limits>
#include <optional>
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

/// Whether a ranked candidate may run: cuDNN offers it, it is deterministic (atomics-free: a
/// resumed run must repeat every bit), it computes in the math of `t`, and it fits the cap.
template <class Perf>
bool qualifies(const Perf& p, const Tensor& t) {
  return p.status == CUDNN_STATUS_SUCCESS && p.determinism == CUDNN_DETERMINISTIC &&
         math_fits(p.mathType, t) && p.memory <= kMaxWorkspaceBytes;
}

/// cuDNN's output size along one axis (cudnnGetConvolution2dForwardOutputDim's formula).
int64_t cudnn_out(int64_t in, int64_t pad, int64_t dil, int64_t kernel, int64_t stride) {
  return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
}

/// g with the output size cuDNN derives from its input. It exceeds g's only for
/// conv_transpose2d with output_padding >= stride (allowed when < dilation) and that op's
/// backward: the extra output rows/columns lie outside the op.
cpu::ConvGeometry cudnn_geometry(const cpu::ConvGeometry& g) {
  cpu::ConvGeometry c = g;
  c.out_h = cudnn_out(g.in_h, g.pad_h, g.dil_h, g.kernel_h, g.stride_h);
  c.out_w = cudnn_out(g.in_w, g.pad_w, g.dil_w, g.kernel_w, g.stride_w);
  check_internal(c.out_h >= g.out_h && c.out_w >= g.out_w, "conv geometry out ", g.out_h, "x",
                 g.out_w, " beyond cuDNN's ", c.out_h, "x", c.out_w);
  return c;
}

bool extends(const cpu::ConvGeometry& g, const cpu::ConvGeometry& full) {
  return g.out_h != full.out_h || g.out_w != full.out_w;
}

/// The (N, C, g.out_h, g.out_w) corner of an output-shaped tensor of the larger geometry.
Tensor corner(const Tensor& t, const cpu::ConvGeometry& g) {
  return t.slice(2, 0, g.out_h).slice(3, 0, g.out_w);
}

/// gy zero-extended to cuDNN's output size: the adjoints ignore the positions outside the op.
Tensor zero_extended(const Tensor& gy, const cpu::ConvGeometry& g, const cpu::ConvGeometry& full) {
  if (!extends(g, full)) return gy;
  Tensor big =
      empty({full.batch, full.out_channels, full.out_h, full.out_w}, gy.dtype(), gy.device());
  fill(big, 0.0);
  copy(gy, corner(big, g));
  return big;
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

/// The three passes, as they appear in plan keys.
enum class Pass : int64_t { forward, data, filter };

ConvKey conv_key(Pass pass, const cpu::ConvGeometry& g, const Tensor& like) {
  return {int64_t(pass),
          int64_t(like.dtype()),
          g.batch,
          g.in_channels,
          g.out_channels,
          g.in_h,
          g.in_w,
          g.out_h,
          g.out_w,
          g.kernel_h,
          g.kernel_w,
          g.pad_h,
          g.pad_w,
          g.stride_h,
          g.stride_w,
          g.dil_h,
          g.dil_w,
          g.groups,
          0};
}

/// cuDNN's ranked candidates that qualify, best first.
template <class Perf, class Find>
std::vector<Perf> candidates(cudnnHandle_t h, ConvDescriptors& d, int count, const Tensor& like,
                             Find&& find) {
  std::vector<Perf> perf(count);
  int returned = 0;
  find(h, d, perf, &returned);
  std::vector<Perf> ok;
  for (int i = 0; i < returned; ++i) {
    if (qualifies(perf[i], like)) ok.push_back(perf[i]);
  }
  return ok;
}

/// Runs one candidate: cuDNN picks kernels by algorithm and the descriptor's math type, so the
/// descriptor gets the math the candidate was ranked with. Returns cuDNN's status.
template <class Perf, class Run>
cudnnStatus_t run_candidate(cudnnHandle_t h, ConvDescriptors& d, const Perf& p, const Tensor& like,
                            Run&& run) {
  STRATA_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), p.mathType));
  Tensor ws = workspace(p.memory, like.device());
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  with_scalars(like,
               [&](const void* one, const void* zero) { status = run(h, d, p, ws, one, zero); });
  return status;
}

/// The first of `perf` that runs (cuDNN can decline a ranked algorithm: NOT_SUPPORTED), or
/// none; any other failure is an error naming `call`.
template <class Perf, class Run>
std::optional<Perf> first_that_runs(const char* call, cudnnHandle_t h, ConvDescriptors& d,
                                    const std::vector<Perf>& perf, const Tensor& like, Run&& run) {
  for (const Perf& p : perf) {
    const cudnnStatus_t status = run_candidate(h, d, p, like, run);
    if (status == CUDNN_STATUS_SUCCESS) return p;
    check(CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED, "[cudnn] ", call,
          " (algorithm ", static_cast<int>(p.algo), ") failed: ", cudnnGetErrorString(status), " (",
          static_cast<int>(status), ")");
  }
  return std::nullopt;
}

/// One cuDNN pass for tensors of `like`'s dtype: the descriptors; the device's plan for this
/// pass and geometry, or else (or when the planned algorithm declines) cuDNN's qualifying
/// candidates from `find(h, d, perf, &returned)` in rank order until one runs, remembered as
/// the plan; `run(h, d, perf, workspace, one, zero)` returns cuDNN's status. False when none
/// runs. The handle's lock is held throughout.
template <class Perf, class Find, class Run>
bool cudnn_pass(const char* call, Pass pass, const cpu::ConvGeometry& g, const Tensor& like,
                int count, Find&& find, Run&& run) {
  stream_for(like.device());  // cuDNN calls act on the current device: make it like's
  const Cudnn c = cudnn_for(like.device());
  std::lock_guard<std::mutex> lock(*c.mutex);
  ConvDescriptors d;
  describe(d, g, like);
  const ConvKey key = conv_key(pass, g, like);
  if (auto plan = c.plans->find(key)) {
    if (!plan->found) return false;
    Perf p{};
    p.algo = static_cast<decltype(p.algo)>(plan->algo);
    p.mathType = static_cast<cudnnMathType_t>(plan->math);
    p.memory = plan->workspace;
    if (first_that_runs(call, c.handle, d, std::vector<Perf>{p}, like, run)) return true;
  }
  const auto ran = first_that_runs(call, c.handle, d,
                                   candidates<Perf>(c.handle, d, count, like, find), like, run);
  c.plans->assign(key, ran ? ConvPlan{true, static_cast<int>(ran->algo),
                                      static_cast<int>(ran->mathType), ran->memory}
                           : ConvPlan{});
  return ran.has_value();
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const cpu::ConvGeometry& op) {
  if (y.numel() == 0) return;
  const cpu::ConvGeometry g = cudnn_geometry(op);
  const Tensor y_full =
      extends(op, g) ? empty({g.batch, g.out_channels, g.out_h, g.out_w}, y.dtype(), y.device())
                     : y;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  with_f32_fallback(
      "forward", x, w, y_full, [&](const Tensor& x, const Tensor& w, const Tensor& y) {
        return cudnn_pass<Perf>(
            "cudnnConvolutionForward", Pass::forward, g, x, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
            [&](cudnnHandle_t h, ConvDescriptors& d, std::vector<Perf>& perf, int* returned) {
              STRATA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
                  h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), static_cast<int>(perf.size()),
                  returned, perf.data()));
            },
            [&](cudnnHandle_t h, ConvDescriptors& d, const Perf& best, const Tensor& ws,
                const void* one, const void* zero) {
              return cudnnConvolutionForward(h, one, d.x.get(), x.raw_data(), d.w.get(),
                                             w.raw_data(), d.conv.get(), best.algo, ws.raw_data(),
                                             best.memory, zero, d.y.get(), y.raw_data());
            });
      });
  if (extends(op, g)) copy(corner(y_full, op), y);
  add_bias(bias, y);
}

void conv2d_input_grad(const Tensor& gy_op, const Tensor& w, const Tensor& bias, const Tensor& gx,
                       const cpu::ConvGeometry& op) {
  if (gx.numel() == 0) return;
  if (gy_op.numel() == 0) {  // no output positions (cuDNN rejects empty tensors): bias only
    fill(gx, 0.0);
    return add_bias(bias, gx);
  }
  const cpu::ConvGeometry g = cudnn_geometry(op);
  const Tensor gy = zero_extended(gy_op, op, g);
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  with_f32_fallback(
      "input-gradient", gy, w, gx, [&](const Tensor& gy, const Tensor& w, const Tensor& gx) {
        return cudnn_pass<Perf>(
            "cudnnConvolutionBackwardData", Pass::data, g, gy,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
            [&](cudnnHandle_t h, ConvDescriptors& d, std::vector<Perf>& perf, int* returned) {
              STRATA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                  h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), static_cast<int>(perf.size()),
                  returned, perf.data()));
            },
            [&](cudnnHandle_t h, ConvDescriptors& d, const Perf& best, const Tensor& ws,
                const void* one, const void* zero) {
              return cudnnConvolutionBackwardData(
                  h, one, d.w.get(), w.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(),
                  best.algo, ws.raw_data(), best.memory, zero, d.x.get(), gx.raw_data());
            });
      });
  add_bias(bias, gx);
}

void conv2d_weight_grad(const Tensor& x, const Tensor& gy_op, const Tensor& gw,
                        const cpu::ConvGeometry& op) {
  if (gw.numel() == 0) return;
  if (x.numel() == 0 || gy_op.numel() == 0) return fill(gw, 0.0);  // an empty batch: no gradient
  const cpu::ConvGeometry g = cudnn_geometry(op);
  const Tensor gy = zero_extended(gy_op, op, g);
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  with_f32_fallback(
      "weight-gradient", x, gy, gw, [&](const Tensor& x, const Tensor& gy, const Tensor& gw) {
        return cudnn_pass<Perf>(
            "cudnnConvolutionBackwardFilter", Pass::filter, g, x,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
            [&](cudnnHandle_t h, ConvDescriptors& d, std::vector<Perf>& perf, int* returned) {
              STRATA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                  h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), static_cast<int>(perf.size()),
                  returned, perf.data()));
            },
            [&](cudnnHandle_t h, ConvDescriptors& d, const Perf& best, const Tensor& ws,
                const void* one, const void* zero) {
              return cudnnConvolutionBackwardFilter(
                  h, one, d.x.get(), x.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(),
                  best.algo, ws.raw_data(), best.memory, zero, d.w.get(), gw.raw_data());
            });
      });
}

}  // namespace strata::cuda
