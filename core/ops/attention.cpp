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

/// What the fused CUDA kernels take: not f64, head dims D == Dv <= 128.
void check_cuda_attention(const Tensor& q, const Tensor& v) {
  check(q.dtype() != DType::f64, "[", kOp, "] has no f64 CUDA kernel (q ", q.desc(),
        "); use f32, bf16 or f16 on CUDA, or f64 on the CPU (device: cpu)");
  check(q.size(3) <= cuda::kMaxAttentionHeadDim && v.size(3) == q.size(3), "[", kOp,
        "] the CUDA kernel needs head dims D == Dv <= ", cuda::kMaxAttentionHeadDim, "; got q ",
        q.desc(), " and v ", v.desc(), "; run on the CPU (device: cpu) for other shapes");
}

/// The fused CUDA kernels: forward saves the log-sum-exp, backward recomputes P from it.
Tensor cuda_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& m,
                      bool causal, double s) {
  check_cuda_attention(q, v);
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

namespace {

/// Head i (0: q, 1: k, 2: v) of a packed (B, T, 3C) tensor as a (B, H, T, C / H) view.
Tensor packed_head(const Tensor& t, int64_t i, int64_t heads) {
  const int64_t B = t.size(0), T = t.size(1), C = t.size(2) / 3;
  return t.slice(2, i * C, (i + 1) * C).reshape({B, T, heads, C / heads}).transpose(1, 2);
}

/// (B, H, T, D) back to (B, T, H * D).
Tensor merge_heads(const Tensor& y) {
  return y.transpose(1, 2).reshape({y.size(0), y.size(2), y.size(1) * y.size(3)});
}

/// The CUDA path of packed_self_attention: one node, the packed gradient written in place.
Tensor cuda_packed_attention(const Tensor& qkv, int64_t heads, bool causal) {
  const Tensor x = qkv.detach();
  Tensor q = packed_head(x, 0, heads).contiguous(), k = packed_head(x, 1, heads).contiguous();
  Tensor v = packed_head(x, 2, heads).contiguous();
  check_cuda_attention(q, v);
  const double s = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor out = empty(q.shape(), q.dtype(), q.device());
  Tensor lse = empty({q.size(0), q.size(1), q.size(2)}, DType::f32, q.device());
  cuda::attention_forward(q, k, v, Tensor(), causal, s, out, lse);
  const Shape shape = qkv.shape();
  return record_fused(
      "packed_self_attention", merge_heads(out), {qkv},
      [q, k, v, out, lse, causal, s, heads, shape](const Tensor& g) {
        const int64_t B = shape[0], T = shape[1], C = shape[2] / 3;
        Tensor dout = g.to(out.dtype()).reshape({B, T, heads, C / heads}).transpose(1, 2);
        dout = dout.contiguous();
        // (3, B, H, T, D): dq, dk and dv are its contiguous blocks; one permuting copy packs
        // them as (B, T, 3C).
        Tensor d = empty({3, B, heads, T, C / heads}, q.dtype(), q.device());
        cuda::attention_backward(q, k, v, Tensor(), causal, s, out, lse, dout, d.select(0, 0),
                                 d.select(0, 1), d.select(0, 2));
        return Grads{d.permute({1, 3, 0, 2, 4}).contiguous().reshape(shape)};
      });
}

}  // namespace

Tensor packed_self_attention(const Tensor& qkv, int64_t heads, bool causal) {
  if (autocast_dtype()) return autocast::run_low(packed_self_attention, qkv, heads, causal);
  check(qkv.defined() && qkv.dim() == 3 && qkv.size(2) % 3 == 0, "[packed_self_attention] qkv ",
        qkv.defined() ? qkv.desc() : std::string("undefined"),
        " should be (B, T, 3C): q, k and v side by side in the last dim");
  check(heads > 0 && (qkv.size(2) / 3) % heads == 0,
        "[packed_self_attention] C = ", qkv.size(2) / 3, " does not split into ", heads,
        " heads; pick a divisor of C");
  if (on_cuda(qkv) && qkv.numel() > 0) return cuda_packed_attention(qkv, heads, causal);
  return merge_heads(scaled_dot_product_attention(packed_head(qkv, 0, heads),
                                                  packed_head(qkv, 1, heads),
                                                  packed_head(qkv, 2, heads), {}, causal));
}

}  // namespace strata
