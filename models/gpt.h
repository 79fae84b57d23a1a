// A GPT-2 style decoder-only Transformer (pre-LayerNorm blocks, learned positions, tied
// input embedding and output head), with nanoGPT's parameter names.
#pragma once

#include <map>
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

/// Which parts of a GPT this process builds: all of it, or one pipeline stage's share.
struct GPTShard {
  bool embedding = true;        // wte, wpe and the embedding dropout (the first stage)
  bool head = true;             // ln_f and the output head (the last stage)
  std::vector<int64_t> blocks;  // global indices of the blocks held (named h.<index>)
  static GPTShard whole(int64_t n_layer);
};

/// The blocks held by a (possibly partial) GPT, under their global names "0", "1", ...
class BlockStack : public nn::Module {
 public:
  void add(int64_t index, std::shared_ptr<Block> block);
  /// Blocks [begin, end) in order; each must be held.
  Tensor forward(const Tensor& x, int64_t begin, int64_t end);
  bool holds(int64_t index) const { return blocks_.count(index) != 0; }

 private:
  std::map<int64_t, std::shared_ptr<Block>> blocks_;
};

class GPT : public nn::Module {
 public:
  /// Initialised as GPT-2: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)).
  /// Every part draws from its own stream derived from one draw of `gen`, so a pipeline stage
  /// builds only its own parameters and they equal the whole model's.
  GPT(const GPTConfig& cfg, Generator& gen);
  /// Only the parts in `shard`. When the head is tied and the embedding lives elsewhere, the
  /// head keeps its own copy of wte (named wte.weight, initialised identically): the pipeline
  /// keeps the two equal (launch/ and distributed/pipeline/).
  GPT(const GPTConfig& cfg, Generator& gen, const GPTShard& shard);
  /// idx (B, T) i64 -> logits (B, T, vocab_size). Needs the whole model.
  Tensor forward(const Tensor& idx);
  /// Mean next-token cross-entropy of idx (B, T) against targets (B, T).
  Tensor loss(const Tensor& idx, const Tensor& targets);

  // The stages of forward, for pipeline parallelism: embed, then blocks, then the head.
  /// idx (B, T) -> the first block's input (B, T, C).
  Tensor embed(const Tensor& idx);
  /// Blocks [begin, end) applied to x (B, T, C).
  Tensor run_blocks(const Tensor& x, int64_t begin, int64_t end);
  /// The last block's output (B, T, C) -> logits (B, T, vocab_size).
  Tensor head_logits(const Tensor& x);
  /// The mean cross-entropy of head_logits(x) against targets (B, T).
  Tensor head_loss(const Tensor& x, const Tensor& targets);

  const GPTConfig& config() const { return cfg_; }
  const GPTShard& shard() const { return shard_; }
  /// Greedy-free sampling: `n` new tokens after `prompt` at `temperature`, drawing from gen.
  std::vector<int64_t> generate(std::vector<int64_t> prompt, int64_t n, double temperature,
                                Generator& gen);

 private:
  void build_embedding(Generator& wte_gen, Generator& wpe_gen, uint64_t drop_seed);
  GPTConfig cfg_;
  GPTShard shard_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;  // wpe_ null on a head-only stage
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<BlockStack> h_;  // the blocks, named h.0, h.1, ...
  std::shared_ptr<nn::LayerNorm> ln_f_;
  std::shared_ptr<nn::Linear> lm_head_;  // absent when tied to wte
  // 0 .. block_size - 1 on the device of the last input: on a GPU, made once rather than
  // copied from the host (a synchronisation) on every forward. Not a buffer: never saved.
  Tensor positions_;
};

}  // namespace strata::models
