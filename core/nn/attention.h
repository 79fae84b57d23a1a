// MultiheadAttention with torch's packed input projection (in_proj_weight (3E, E)), so that
// state_dicts map one to one onto torch.nn.MultiheadAttention's.
#pragma once

#include <memory>

#include "core/nn/linear.h"
#include "core/nn/module.h"
#include "core/random.h"

namespace strata::nn {

struct MultiheadAttentionOptions {
  int64_t embed_dim = 0;
  int64_t num_heads = 0;
  /// Attention-weight dropout; only 0 is supported until the attention op takes a generator.
  double dropout = 0.0;
  bool bias = true;
  /// (B, T, E) inputs. Unlike torch's default (False, (T, B, E)), since every model here is
  /// batch-first.
  bool batch_first = true;
};

class MultiheadAttention : public Layer {
 public:
  /// in_proj_weight xavier_uniform_, in_proj_bias 0, out_proj as Linear with bias 0 (torch).
  MultiheadAttention(const MultiheadAttentionOptions& options, Generator& gen);
  /// Self-attention without masks: x (B, T, E) -> (B, T, E).
  Tensor forward(const Tensor& x) override;
  /// query (B, L, E), key and value (B, S, E) -> (B, L, E) (sequence-first when !batch_first).
  /// key_padding_mask: bool (B, S), true = padding, ignored (torch's convention).
  /// attn_mask: bool (L, S) or (B * num_heads, L, S), true = not allowed (torch's convention).
  /// causal: query i attends to keys j <= i only.
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value,
                 const Tensor& key_padding_mask, const Tensor& attn_mask = {}, bool causal = false);

  const MultiheadAttentionOptions& options() const { return options_; }
  const Tensor& in_proj_weight() const { return in_proj_weight_; }  // (3E, E): q, k, v rows
  const Tensor& in_proj_bias() const { return in_proj_bias_; }      // (3E) or undefined
  Linear& out_proj() const { return *out_proj_; }

 private:
  /// (B, T, E) -> (B, H, T, D) with the rows [part * E, (part + 1) * E) of the projection.
  Tensor project(const Tensor& x, int64_t part) const;
  /// The bool "attend" mask for the attention op, (B, 1 or H, L, S), or undefined.
  Tensor attend_mask(const Tensor& key_padding_mask, const Tensor& attn_mask, int64_t batch,
                     int64_t q_len, int64_t k_len) const;

  MultiheadAttentionOptions options_;
  Tensor in_proj_weight_;
  Tensor in_proj_bias_;
  std::shared_ptr<Linear> out_proj_;
};

}  // namespace strata::nn
