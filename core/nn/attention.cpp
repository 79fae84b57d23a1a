// MultiheadAttention: packed projections, torch's mask conventions turned into the attention
// op's "attend" mask, and the head split/merge around scaled_dot_product_attention.
#include "core/nn/attention.h"

#include "core/nn/init.h"
#include "core/ops/attention.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"

namespace strata::nn {

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& options, Generator& gen)
    : options_(options) {
  int64_t e = options.embed_dim, h = options.num_heads;
  check(e > 0, "[MultiheadAttention] embed_dim must be positive, got ", e);
  check(h > 0, "[MultiheadAttention] num_heads must be positive, got ", h);
  check(e % h == 0, "[MultiheadAttention] embed_dim (", e, ") must be divisible by num_heads (", h,
        ")");
  check(options.dropout == 0.0,
        "[MultiheadAttention] dropout must be 0 (attention dropout is not supported yet), got ",
        options.dropout);
  in_proj_weight_ = register_parameter("in_proj_weight", empty({3 * e, e}));
  init::xavier_uniform_(in_proj_weight_, gen);
  if (options.bias) in_proj_bias_ = register_parameter("in_proj_bias", zeros({3 * e}));
  out_proj_ =
      register_module("out_proj", std::make_shared<Linear>(LinearOptions{e, e, options.bias}, gen));
  if (options.bias) init::zeros_(out_proj_->bias());
}

Tensor MultiheadAttention::forward(const Tensor& x) { return forward(x, x, x, Tensor()); }

Tensor MultiheadAttention::project(const Tensor& x, int64_t part) const {
  int64_t e = options_.embed_dim, h = options_.num_heads;
  Tensor w = in_proj_weight_.slice(0, part * e, (part + 1) * e);
  Tensor b = in_proj_bias_.defined() ? in_proj_bias_.slice(0, part * e, (part + 1) * e) : Tensor();
  Tensor y = linear(x, w, b);  // (B, T, E)
  return y.reshape({x.size(0), x.size(1), h, e / h}).permute({0, 2, 1, 3});
}

Tensor MultiheadAttention::attend_mask(const Tensor& key_padding_mask, const Tensor& attn_mask,
                                       int64_t batch, int64_t q_len, int64_t k_len) const {
  // Blocked positions are summed as floats and "attend" is blocked == 0, which keeps this to
  // element-wise ops that every backend has.
  Tensor blocked;
  if (key_padding_mask.defined()) {
    const Tensor& m = key_padding_mask;
    check(m.dtype() == DType::b8 && m.shape() == Shape{batch, k_len},
          "[MultiheadAttention] key_padding_mask must be bool (", batch, ", ", k_len,
          ") (true = padding), got ", m.desc());
    blocked = m.to(DType::f32).reshape({batch, 1, 1, k_len});
  }
  if (attn_mask.defined()) {
    const Tensor& m = attn_mask;
    int64_t bh = batch * options_.num_heads;
    bool ok = m.dtype() == DType::b8 &&
              (m.shape() == Shape{q_len, k_len} || m.shape() == Shape{bh, q_len, k_len});
    check(ok, "[MultiheadAttention] attn_mask must be bool (", q_len, ", ", k_len, ") or (", bh,
          ", ", q_len, ", ", k_len, ") (true = not allowed), got ", m.desc());
    Tensor am = m.to(DType::f32);
    am = m.dim() == 2 ? am.reshape({1, 1, q_len, k_len})
                      : am.reshape({batch, options_.num_heads, q_len, k_len});
    blocked = blocked.defined() ? add(blocked, am) : am;
  }
  return blocked.defined() ? eq(blocked, scalar_like(0, blocked)) : Tensor();
}

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const Tensor& key_padding_mask, const Tensor& attn_mask,
                                   bool causal) {
  int64_t e = options_.embed_dim;
  for (const Tensor* t : {&query, &key, &value}) {
    check(t->dim() == 3 && t->size(2) == e, "[MultiheadAttention] query, key and value must be ",
          options_.batch_first ? "(B, T, " : "(T, B, ", e, ") (embed_dim), got ", t->desc());
  }
  auto batch_major = [&](const Tensor& t) { return options_.batch_first ? t : t.transpose(0, 1); };
  Tensor q_in = batch_major(query), k_in = batch_major(key), v_in = batch_major(value);
  int64_t b = q_in.size(0), l = q_in.size(1), s = k_in.size(1);
  check(k_in.size(0) == b && v_in.size(0) == b && v_in.size(1) == s,
        "[MultiheadAttention] batch and sequence sizes disagree: query ", query.desc(), ", key ",
        key.desc(), ", value ", value.desc());
  Tensor q, k, v;
  if (query.same(key) && key.same(value)) {
    // Self-attention: one GEMM for q, k and v together.
    int64_t h = options_.num_heads;
    Tensor qkv = linear(q_in, in_proj_weight_, in_proj_bias_)
                     .reshape({b, l, 3, h, e / h})
                     .permute({2, 0, 3, 1, 4});  // (3, B, H, L, D)
    q = qkv.select(0, 0);
    k = qkv.select(0, 1);
    v = qkv.select(0, 2);
  } else {
    q = project(q_in, 0);
    k = project(k_in, 1);
    v = project(v_in, 2);
  }
  Tensor mask = attend_mask(key_padding_mask, attn_mask, b, l, s);
  Tensor attn = scaled_dot_product_attention(q, k, v, mask, causal);  // (B, H, L, D)
  Tensor out = out_proj_->forward(attn.permute({0, 2, 1, 3}).reshape({b, l, e}));
  return options_.batch_first ? out : out.transpose(0, 1);
}

}  // namespace strata::nn
