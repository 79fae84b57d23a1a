// conv2d and conv_transpose2d: checks, kernels and backward. The three ops below (conv2d,
// its input adjoint conv_transpose2d, and its weight adjoint) are each other's gradients, so
// backward is built from them and double backward works (WGAN-GP's gradient penalty).
#include "core/ops/conv.h"

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/conv.h"
#include "core/backend/cuda/conv.h"
#include "core/ops/dispatch.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

using Hw = std::array<int64_t, 2>;

std::string pair_str(const Hw& v) { return str_cat("(", v[0], ", ", v[1], ")"); }

// ---- geometry ----

/// conv2d of x (N, C_in, H, W) by weight (C_out, C_in/groups, kH, kW) into out_hw.
cpu::ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Conv2dParams& p,
                                const Hw& out_hw) {
  cpu::ConvGeometry g;
  g.batch = x[0];
  g.in_channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_channels = w[0];
  g.out_h = out_hw[0];
  g.out_w = out_hw[1];
  g.kernel_h = w[2];
  g.kernel_w = w[3];
  g.stride_h = p.stride[0];
  g.stride_w = p.stride[1];
  g.pad_h = p.padding[0];
  g.pad_w = p.padding[1];
  g.dil_h = p.dilation[0];
  g.dil_w = p.dilation[1];
  g.groups = p.groups;
  return g;
}

/// The conv2d whose input adjoint maps x (N, C_in, H, W) to (N, C_out, out_hw) with weight
/// (C_in, C_out/groups, kH, kW): conv_transpose2d read backwards.
cpu::ConvGeometry transpose_geometry(const Shape& x, const Shape& w, const Conv2dParams& p,
                                     const Hw& out_hw) {
  Shape in = {x[0], w[1] * p.groups, out_hw[0], out_hw[1]};
  return conv_geometry(in, w, p, {x[2], x[3]});
}

Hw hw_of(const Tensor& t) { return {t.size(2), t.size(3)}; }

// ---- kernels without autograd (bf16/f16 computed in f32 on the CPU) ----

Tensor f32_or_undefined(const Tensor& t) { return t.defined() ? t.to(DType::f32) : t; }
Tensor plain(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

Tensor conv2d_kernel(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                     const Hw& out_hw) {
  if (widen_by_copy(x)) {  // cuDNN takes bf16/f16
    return conv2d_kernel(x.detach().to(DType::f32), w.detach().to(DType::f32),
                         f32_or_undefined(plain(b)), p, out_hw)
        .to(x.dtype());
  }
  Tensor y = empty({x.size(0), w.size(0), out_hw[0], out_hw[1]}, x.dtype(), x.device());
  const auto geometry = conv_geometry(x.shape(), w.shape(), p, out_hw);
  if (on_cuda(x)) {
    cuda::conv2d_forward(plain(x), plain(w), plain(b), y, geometry);
  } else {
    cpu::conv2d_forward(plain(x), plain(w), plain(b), y, geometry);
  }
  return y;
}

Tensor conv_transpose2d_kernel(const Tensor& x, const Tensor& w, const Tensor& b,
                               const Conv2dParams& p, const Hw& out_hw) {
  if (widen_by_copy(x)) {  // cuDNN takes bf16/f16
    return conv_transpose2d_kernel(x.detach().to(DType::f32), w.detach().to(DType::f32),
                                   f32_or_undefined(plain(b)), p, out_hw)
        .to(x.dtype());
  }
  Tensor y = empty({x.size(0), w.size(1) * p.groups, out_hw[0], out_hw[1]}, x.dtype(), x.device());
  const auto geometry = transpose_geometry(x.shape(), w.shape(), p, out_hw);
  if (on_cuda(x)) {
    cuda::conv2d_input_grad(plain(x), plain(w), plain(b), y, geometry);
  } else {
    cpu::conv2d_input_grad(plain(x), plain(w), plain(b), y, geometry);
  }
  return y;
}

Tensor weight_grad_kernel(const Tensor& x, const Tensor& gy, const Shape& w_shape,
                          const Conv2dParams& p) {
  if (widen_by_copy(x)) {  // cuDNN takes bf16/f16
    return weight_grad_kernel(x.detach().to(DType::f32), gy.detach().to(DType::f32), w_shape, p)
        .to(x.dtype());
  }
  Tensor gw = empty(w_shape, x.dtype(), x.device());
  const auto geometry = conv_geometry(x.shape(), w_shape, p, hw_of(gy));
  if (on_cuda(x)) {
    cuda::conv2d_weight_grad(plain(x), plain(gy), gw, geometry);
  } else {
    cpu::conv2d_weight_grad(plain(x), plain(gy), gw, geometry);
  }
  return gw;
}

// ---- the three recorded ops; output sizes are explicit so each is the exact adjoint ----

Tensor conv2d_sized(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                    const Hw& out_hw);
Tensor conv_transpose2d_sized(const Tensor& x, const Tensor& w, const Tensor& b,
                              const Conv2dParams& p, const Hw& out_hw);

/// sum(g, {0, 2, 3}); plain backward takes one fused pass over g instead of the general
/// reduction.
Tensor bias_grad(const Tensor& b, const Tensor& g) {
  if (!b.defined() || !b.requires_grad()) return Tensor();
  if (GradMode::enabled() || storage_only(g.dtype()) || on_cuda(g)) return sum(g, {0, 2, 3});
  Tensor gb = empty({g.size(1)}, g.dtype(), g.device());
  cpu::conv2d_bias_grad(g.contiguous(), gb);
  return gb;
}

/// dL/dw of conv2d(x, w) given gy = dL/dy; linear in both x and gy.
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape,
                          const Conv2dParams& p) {
  Tensor gw = weight_grad_kernel(x, gy, w_shape, p);
  return record("conv2d_weight_grad", gw, {x, gy}, [x, gy, p](const Tensor& g) {
    Tensor gx = x.requires_grad() ? conv_transpose2d_sized(gy, g, {}, p, hw_of(x)) : Tensor();
    Tensor ggy = gy.requires_grad() ? conv2d_sized(x, g, {}, p, hw_of(gy)) : Tensor();
    return std::vector<Tensor>{gx, ggy};
  });
}

Tensor conv2d_sized(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                    const Hw& out_hw) {
  Tensor y = conv2d_kernel(x, w, b, p, out_hw);
  return record("conv2d", y, {x, w, b}, [x, w, b, p](const Tensor& g) {
    Tensor gx = x.requires_grad() ? conv_transpose2d_sized(g, w, {}, p, hw_of(x)) : Tensor();
    Tensor gw = w.requires_grad() ? conv2d_weight_grad(x, g, w.shape(), p) : Tensor();
    return std::vector<Tensor>{gx, gw, bias_grad(b, g)};
  });
}

Tensor conv_transpose2d_sized(const Tensor& x, const Tensor& w, const Tensor& b,
                              const Conv2dParams& p, const Hw& out_hw) {
  Tensor y = conv_transpose2d_kernel(x, w, b, p, out_hw);
  return record("conv_transpose2d", y, {x, w, b}, [x, w, b, p](const Tensor& g) {
    Tensor gx = x.requires_grad() ? conv2d_sized(g, w, {}, p, hw_of(x)) : Tensor();
    Tensor gw = w.requires_grad() ? conv2d_weight_grad(g, x, w.shape(), p) : Tensor();
    return std::vector<Tensor>{gx, gw, bias_grad(b, g)};
  });
}

// ---- user-facing checks ----

void check_params(const char* op, const Conv2dParams& p) {
  for (int i = 0; i < 2; ++i) {
    check(p.stride[i] >= 1, "[", op, "] stride ", pair_str(p.stride), " must be >= 1");
    check(p.dilation[i] >= 1, "[", op, "] dilation ", pair_str(p.dilation), " must be >= 1");
    check(p.padding[i] >= 0, "[", op, "] padding ", pair_str(p.padding), " must be >= 0");
  }
  check(p.groups >= 1, "[", op, "] groups=", p.groups, " must be >= 1");
}

void check_operands(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
  check_dim(op, x, 4, "input (N, C, H, W)");
  check_dim(op, w, 4, "weight (C_out, C_in / groups, kH, kW)");
  check_same_device(op, x, w);
  check_same_dtype(op, x, w);
  check_floating(op, x);
  if (b.defined()) {
    check_same_device(op, x, b);
    check_same_dtype(op, x, b);
  }
}

void check_bias(const char* op, const Tensor& b, int64_t out_channels) {
  check(!b.defined() || (b.dim() == 1 && b.size(0) == out_channels), "[", op, "] bias ",
        b.defined() ? b.desc() : "", " should be (C_out=", out_channels, ")");
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  if (autocast_dtype()) return autocast::run_low(conv2d, x, weight, bias, p);
  const char* op = "conv2d";
  check_operands(op, x, weight, bias);
  check_params(op, p);
  int64_t c_in = x.size(1), c_out = weight.size(0);
  check(c_in % p.groups == 0 && c_out % p.groups == 0, "[conv2d] groups=", p.groups,
        " must divide both in_channels=", c_in, " and out_channels=", c_out);
  check(weight.size(1) * p.groups == c_in, "[conv2d] input ", x.desc(), " has ", c_in,
        " channels but weight ", weight.desc(), " expects ", weight.size(1) * p.groups,
        " (weight.size(1)=", weight.size(1), " x groups=", p.groups, ")");
  check_bias(op, bias, c_out);
  Hw out_hw;
  for (int i = 0; i < 2; ++i) {
    int64_t span = p.dilation[i] * (weight.size(2 + i) - 1) + 1;
    int64_t padded = x.size(2 + i) + 2 * p.padding[i];
    check(span <= padded, "[conv2d] kernel ", pair_str({weight.size(2), weight.size(3)}),
          " with dilation ", pair_str(p.dilation), " spans ", span, " but the padded input ",
          x.desc(), " with padding ", pair_str(p.padding), " is only ", padded, " along dim ",
          2 + i, "; use a smaller kernel or more padding");
    out_hw[i] = (padded - span) / p.stride[i] + 1;
  }
  return conv2d_sized(x, weight, bias, p, out_hw);
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Conv2dParams& p) {
  if (autocast_dtype()) return autocast::run_low(conv_transpose2d, x, weight, bias, p);
  const char* op = "conv_transpose2d";
  check_operands(op, x, weight, bias);
  check_params(op, p);
  int64_t c_in = x.size(1), c_out = weight.size(1) * p.groups;
  check(c_in % p.groups == 0, "[conv_transpose2d] groups=", p.groups,
        " must divide in_channels=", c_in);
  check(weight.size(0) == c_in, "[conv_transpose2d] input ", x.desc(), " has ", c_in,
        " channels but weight ", weight.desc(), " expects ", weight.size(0),
        " (weight is (C_in, C_out / groups, kH, kW))");
  check_bias(op, bias, c_out);
  Hw out_hw{0, 0};
  for (int i = 0; i < 2; ++i) {
    int64_t op_i = p.output_padding[i];
    check(op_i >= 0 && (op_i < p.stride[i] || op_i < p.dilation[i]),
          "[conv_transpose2d] output_padding ", pair_str(p.output_padding),
          " must be >= 0 and smaller than either stride ", pair_str(p.stride), " or dilation ",
          pair_str(p.dilation));
    out_hw[i] = (x.size(2 + i) - 1) * p.stride[i] - 2 * p.padding[i] +
                p.dilation[i] * (weight.size(2 + i) - 1) + op_i + 1;
    check(out_hw[i] > 0, "[conv_transpose2d] output size along dim ", 2 + i, " would be ",
          out_hw[i], ", not positive, for input ", x.desc(), ", weight ", weight.desc(),
          " and padding ", pair_str(p.padding), "; reduce the padding");
  }
  return conv_transpose2d_sized(x, weight, bias, p, out_hw);
}

}  // namespace strata
