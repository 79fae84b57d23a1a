// A GPT-2 style decoder-only Transformer (pre-LayerNorm blocks, learned positions, tied
// input embedding and output head), with nanoGPT's parameter names.
#pragma once

#include <memory>
#include <vector>

#include "core/nn/container.h"
#include "core/nn/embedding.h"
#include "core/nn/linear.h"
#include "core/nn/norm.h"

namespace strata::models {

struct GPTConfig {
  int64_t vocab_size = 0;
  int64_t block_size = 64;  // maximum context length T
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  double dropout = 0.0;
  bool bias = true;
  bool tie_weights = true;
  /// Throws an Error naming the field when a value is invalid.
  void validate() const;
};

/// Causal self-attention: one packed q/k/v projection, then SDPA with a causal mask.
class CausalSelfAttention : public nn::Layer {
 public:
  CausalSelfAttention(const GPTConfig& cfg, Generator& gen, uint64_t dropout_seed);
  /// x (B, T, C) -> (B, T, C).
  Tensor forward(const Tensor& x) override;

 private:
  int64_t n_head_;
  std::shared_ptr<nn::Linear> c_attn_, c_proj_;
  std::shared_ptr<nn::Dropout> resid_drop_;
};

class Block : public nn::Layer {
 public:
  Block(const GPTConfig& cfg, Generator& gen, uint64_t dropout_seed);
  /// x (B, T, C) -> (B, T, C): x + attn(ln_1(x)), then + mlp(ln_2(x)).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::LayerNorm> ln_1_, ln_2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<nn::Linear> fc_, proj_;  // the MLP: C -> 4C -> C
  std::shared_ptr<nn::Dropout> mlp_drop_;
};

class GPT : public nn::Module {
 public:
  /// Initialised as GPT-2: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)).
  GPT(const GPTConfig& cfg, Generator& gen);
  /// idx (B, T) i64 -> logits (B, T, vocab_size).
  Tensor forward(const Tensor& idx);
  /// Mean next-token cross-entropy of idx (B, T) against targets (B, T).
  Tensor loss(const Tensor& idx, const Tensor& targets);
  const GPTConfig& config() const { return cfg_; }
  /// Greedy-free sampling: `n` new tokens after `prompt` at `temperature`, drawing from gen.
  std::vector<int64_t> generate(std::vector<int64_t> prompt, int64_t n, double temperature,
                                Generator& gen);

 private:
  GPTConfig cfg_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<nn::Sequential> h_;  // the blocks, named h.0, h.1, ...
  std::shared_ptr<nn::LayerNorm> ln_f_;
  std::shared_ptr<nn::Linear> lm_head_;  // absent when tied to wte
};

}  // namespace strata::models
