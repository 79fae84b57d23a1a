// Scaled dot-product attention composed from two batched GEMMs around a fused masked
// softmax. A query row whose keys are all masked outputs 0 (torch 1.13's
// _scaled_dot_product_attention returns NaN there); its gradient is 0 too.
#include "core/ops/attention.h"

#include <cmath>

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/attention.h"
#include "core/backend/cpu/softmax.h"
#include "core/backend/cuda/attention.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

using Grads = std::vector<Tensor>;
constexpr const char* kOp = "scaled_dot_product_attention";

/// softmax(scale * s) over the last dim with masked keys excluded; s (B, H, Tq, Tk).
Tensor masked_softmax(const Tensor& s, const Tensor& mask, bool causal, double scale) {
  Tensor sc = s.detach().contiguous();
  Tensor y = empty(s.shape(), s.dtype(), s.device());
  cpu::masked_softmax(sc, mask, causal, scale, y);
  Tensor saved = y.detach();
  return record("masked_softmax", y, {s}, [s, saved, mask, causal, scale](const Tensor& g) {
    if (!GradMode::enabled()) {
      const int64_t n = saved.size(-1);
      Tensor gs = empty(saved.shape(), saved.dtype(), saved.device());
      cpu::softmax_backward(g.contiguous(), saved, gs, saved.numel() / std::max<int64_t>(n, 1), n,
                            1, false);
      return Grads{gs * scale};
    }
    Tensor p = masked_softmax(s, mask, causal, scale);
    return Grads{p * (g - sum(g * p, {-1}, true)) * scale};
  });
}

/// True when `shape` broadcasts to `full` (trailing alignment, dims of 1 or equal).
bool broadcasts_to(const Shape& shape, const Shape& full) {
  if (shape.size() > full.size()) return false;
  const size_t lead = full.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 1 && shape[i] != full[lead + i]) return false;
  }
  return true;
}

void check_operands(const Tensor& q, const Tensor& k, const Tensor& v) {
  check(q.defined() && k.defined() && v.defined(), "[", kOp, "] q, k or v is undefined");
  check_floating(kOp, q);
  check_same_dtype(kOp, q, k);
  check_same_dtype(kOp, q, v);
  check_same_device(kOp, q, k);
  check_same_device(kOp, q, v);
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "[", kOp,
        "] q, k, v must be (B, H, T, D); got q ", q.desc(), ", k ", k.desc(), ", v ", v.desc());
  check(k.size(0) == q.size(0) && k.size(1) == q.size(1) && v.size(0) == q.size(0) &&
            v.size(1) == q.size(1),
        "[", kOp, "] batch and head dims differ: q ", q.desc(), ", k ", k.desc(), ", v ", v.desc());
  check(k.size(3) == q.size(3), "[", kOp, "] q ", q.desc(), " and k ", k.desc(),
        " must have the same head dim D");
  check(v.size(2) == k.size(2), "[", kOp, "] k ", k.desc(), " and v ", v.desc(),
        " must have the same number of keys Tk");
}

/// The fused CUDA kernels: forward saves the log-sum-exp, backward recomputes P from it.
Tensor cuda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& m,
                      bool causal, double s) {
  check(q.dtype() != DType::f64, "[", kOp, "] has no f64 CUDA kernel (q ", q.desc(),
        "); use f32, bf16 or f16 on CUDA, or f64 on the CPU (device: cpu)");
  check(q.size(3) <= cuda::kMaxAttentionHeadDim && v.size(3) == q.size(3), "[", kOp,
        "] the CUDA kernel needs head dims D == Dv <= ", cuda::kMaxAttentionHeadDim, "; got q ",
        q.desc(), " and v ", v.desc(), "; run on the CPU (device: cpu) for other shapes");
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  Tensor out = empty(q.shape(), q.dtype(), q.device());                           // (B, H, Tq, D)
  Tensor lse = empty({q.size(0), q.size(1), q.size(2)}, DType::f32, q.device());  // (B, H, Tq)
  cuda::attention_forward(qc, kc, vc, m, causal, s, out, lse);
  Tensor saved = out.detach();
  return record_fused(
      "scaled_dot_product_attention", out, {q, k, v},
      [qc, kc, vc, m, causal, s, saved, lse](const Tensor& g) {
        Tensor dq = empty_like(qc), dk = empty_like(kc), dv = empty_like(vc);
        Tensor dout = g.to(saved.dtype()).contiguous();  // (B, H, Tq, D) as the kernel reads it
        cuda::attention_backward(qc, kc, vc, m, causal, s, saved, lse, dout, dq, dk, dv);
        return Grads{dq, dk, dv};
      });
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& mask, bool causal, double scale) {
  if (autocast_dtype())
    return autocast::run_low(scaled_dot_product_attention, q, k, v, mask, causal, scale);
  check_operands(q, k, v);
  const Shape full{q.size(0), q.size(1), q.size(2), k.size(2)};
  Tensor m;
  if (mask.defined()) {
    check(mask.dtype() == DType::b8, "[", kOp, "] mask must be bool (true = attend), got ",
          mask.desc());
    check_same_device(kOp, mask, q);
    check(broadcasts_to(mask.shape(), full), "[", kOp, "] mask ", mask.desc(),
          " does not broadcast to (B, H, Tq, Tk) = ", shape_str(full));
    Shape padded(4 - mask.dim(), 1);
    padded.insert(padded.end(), mask.shape().begin(), mask.shape().end());
    m = mask.detach().reshape(padded).expand(full);
  }
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  if (on_cuda(q)) return cuda_attention(q, k, v, m, causal, s);
  if (storage_only(q.dtype())) {
    return scaled_dot_product_attention(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32), mask,
                                        causal, s)
        .to(q.dtype());
  }
  Tensor scores = matmul(q, k.transpose(-1, -2));  // (B, H, Tq, Tk)
  return matmul(masked_softmax(scores, m, causal, s), v);
}

}  // namespace strata
