// matmul and linear: shape checks, the folding of leading dims into one GEMM, and backward
// as products with transposed views (no copies).
#include "core/ops/linalg.h"

#include "core/autocast.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/linalg.h"
#include "core/backend/cuda/linalg.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

void check_matmul_operands(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
  check_floating(op, a);
}

/// The GEMM of the operands' device: OpenBLAS, or cuBLASLt (f32 in exact f32 unless a
/// Tf32Guard allows TF32).
void gemm_kernel(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta) {
  if (on_cuda(out)) return cuda::gemm(a, b, out, alpha, beta, tf32_allowed());
  cpu::gemm(a, b, out, alpha, beta);
}

/// (batch, m, k) @ (batch, k, n) without autograd.
Tensor bmm_forward(const Tensor& a3, const Tensor& b3) {
  if (widen_by_copy(a3)) {  // cuBLASLt multiplies bf16/f16 itself
    return bmm_forward(a3.to(DType::f32), b3.to(DType::f32)).to(a3.dtype());
  }
  Tensor out = empty({a3.shape()[0], a3.shape()[1], b3.shape()[2]}, a3.dtype(), a3.device());
  gemm_kernel(a3, b3, out, 1.0, 0.0);
  return out;
}

/// The matmul of two operands with >= 2 dims, batch dims broadcast.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  check(b.size(-2) == k, "[matmul] inner dimensions differ: ", a.desc(), " @ ", b.desc(), " (", k,
        " vs ", b.size(-2), ")");
  Tensor out;
  if (b.dim() == 2) {
    // Fold all leading dims of a into the rows of one GEMM.
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(n);
    Tensor a2 = a.detach().reshape({-1, k});
    out = bmm_forward(a2.unsqueeze(0), b.detach().unsqueeze(0)).reshape(out_shape);
  } else {
    Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
    Shape batch = broadcast_shapes(ba, bb, "matmul");
    Shape sa = batch, sb = batch;
    sa.insert(sa.end(), {m, k});
    sb.insert(sb.end(), {k, n});
    int64_t nb = numel_of(batch);
    Tensor a3 = a.detach().expand(sa).reshape({nb, m, k});
    Tensor b3 = b.detach().expand(sb).reshape({nb, k, n});
    Shape out_shape = batch;
    out_shape.insert(out_shape.end(), {m, n});
    out = bmm_forward(a3, b3).reshape(out_shape);
  }
  return record("matmul", out, {a, b}, [a, b](const Tensor& g) {
    Tensor ga = a.requires_grad() ? sum_to(matmul(g, b.transpose(-1, -2)), a.shape()) : Tensor();
    Tensor gb;
    if (b.requires_grad()) {
      if (b.dim() == 2 && a.dim() > 2) {
        gb = matmul(a.reshape({-1, a.size(-1)}).t(), g.reshape({-1, g.size(-1)}));
      } else {
        gb = sum_to(matmul(a.transpose(-1, -2), g), b.shape());
      }
    }
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (autocast_dtype()) return autocast::run_low(matmul, a, b);
  check_matmul_operands("matmul", a, b);
  check(a.dim() >= 1 && b.dim() >= 1, "[matmul] operands must have at least 1 dimension, got ",
        a.desc(), " and ", b.desc());
  if (a.dim() == 1 && b.dim() == 1) return matmul_nd(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  return matmul_nd(a, b);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (autocast_dtype()) return autocast::run_low(linear, x, weight, bias);
  check_matmul_operands("linear", x, weight);
  check_dim("linear", weight, 2, "weight (out_features, in_features)");
  check(x.dim() >= 1 && x.size(-1) == weight.size(1), "[linear] input ", x.desc(),
        " does not end in in_features=", weight.size(1), " of weight ", weight.desc());
  int64_t in = weight.size(1), outf = weight.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  if (bias.defined()) {
    check_matmul_operands("linear", x, bias);
    check(bias.dim() == 1 && bias.size(0) == outf, "[linear] bias ", bias.desc(), " should be (",
          outf, ")");
  }
  if (widen_by_copy(x)) {
    Tensor b32 = bias.defined() ? bias.to(DType::f32) : bias;
    return linear(x.to(DType::f32), weight.to(DType::f32), b32).to(x.dtype());
  }
  Tensor x2 = x.detach().reshape({-1, in});
  Tensor out = empty({x2.size(0), outf}, x.dtype(), x.device());
  Tensor a = x2.unsqueeze(0), b = weight.detach().t().unsqueeze(0);
  // On CUDA the bias rides cuBLASLt's epilogue where it can; else out = bias, then beta = 1.
  const bool fused =
      bias.defined() && on_cuda(out) &&
      cuda::gemm_bias(a, b, bias.detach().contiguous(), out.unsqueeze(0), tf32_allowed());
  if (!fused) {
    double beta = 0.0;
    if (bias.defined()) {
      Tensor dst = out;
      copy_(dst, bias.detach().unsqueeze(0));
      beta = 1.0;
    }
    gemm_kernel(a, b, out.unsqueeze(0), 1.0, beta);
  }
  out = out.reshape(out_shape);
  return record("linear", out, {x, weight, bias}, [x, weight, bias, in](const Tensor& g) {
    Tensor g2 = g.reshape({-1, g.size(-1)});
    Tensor gx = x.requires_grad() ? matmul(g, weight) : Tensor();
    Tensor gw = weight.requires_grad() ? matmul(g2.t(), x.reshape({-1, in})) : Tensor();
    Tensor gb = bias.defined() && bias.requires_grad() ? sum(g2, {0}) : Tensor();
    return std::vector<Tensor>{gx, gw, gb};
  });
}

}  // namespace strata
