// GPT forward pass and initialisation.
#include "models/gpt.h"

#include <cmath>

#include "core/nn/init.h"
#include "core/ops.h"
#include "core/ops/attention.h"
#include "core/ops/loss.h"
#include "core/ops/softmax.h"

namespace strata::models {

void GPTConfig::validate() const {
  check(vocab_size > 0, "[GPT] vocab_size must be positive, got ", vocab_size);
  check(block_size > 0, "[GPT] block_size must be positive, got ", block_size);
  check(n_layer > 0, "[GPT] n_layer must be positive, got ", n_layer);
  check(n_head > 0 && n_embd > 0 && n_embd % n_head == 0, "[GPT] n_embd (", n_embd,
        ") must be a positive multiple of n_head (", n_head, ")");
  check(dropout >= 0 && dropout < 1, "[GPT] dropout must be in [0, 1), got ", dropout);
}

namespace {

std::shared_ptr<nn::Linear> gpt_linear(int64_t in, int64_t out, bool bias, double std,
                                       Generator& gen) {
  auto l = std::make_shared<nn::Linear>(nn::LinearOptions{in, out, bias}, gen);
  nn::init::normal_(l->weight(), gen, 0.0, std);
  if (bias) nn::init::zeros_(l->bias());
  return l;
}

std::shared_ptr<nn::LayerNorm> gpt_norm(int64_t c) {
  return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.normalized_shape = {c}});
}

std::shared_ptr<nn::Dropout> gpt_dropout(double p, uint64_t seed) {
  return std::make_shared<nn::Dropout>(nn::DropoutOptions{p}, Generator(seed));
}

}  // namespace

CausalSelfAttention::CausalSelfAttention(const GPTConfig& cfg, Generator& gen,
                                         uint64_t dropout_seed)
    : n_head_(cfg.n_head) {
  double proj_std = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  c_attn_ = register_module("c_attn", gpt_linear(cfg.n_embd, 3 * cfg.n_embd, cfg.bias, 0.02, gen));
  c_proj_ = register_module("c_proj", gpt_linear(cfg.n_embd, cfg.n_embd, cfg.bias, proj_std, gen));
  resid_drop_ = register_module("resid_drop", gpt_dropout(cfg.dropout, dropout_seed));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  Tensor qkv = c_attn_->forward(x);                      // (B, T, 3C)
  Tensor y = packed_self_attention(qkv, n_head_, true);  // (B, T, C), causal
  return resid_drop_->forward(c_proj_->forward(y));
}

Block::Block(const GPTConfig& cfg, Generator& gen, uint64_t dropout_seed) {
  double proj_std = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  ln_1_ = register_module("ln_1", gpt_norm(cfg.n_embd));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(cfg, gen, dropout_seed));
  ln_2_ = register_module("ln_2", gpt_norm(cfg.n_embd));
  fc_ = register_module("fc", gpt_linear(cfg.n_embd, 4 * cfg.n_embd, cfg.bias, 0.02, gen));
  proj_ = register_module("proj", gpt_linear(4 * cfg.n_embd, cfg.n_embd, cfg.bias, proj_std, gen));
  mlp_drop_ = register_module("mlp_drop", gpt_dropout(cfg.dropout, dropout_seed + 1));
}

Tensor Block::forward(const Tensor& x) {
  Tensor h = add(x, attn_->forward(ln_1_->forward(x)));
  Tensor m = proj_->forward(gelu(fc_->forward(ln_2_->forward(h)), /*tanh_approx=*/true));
  return add(h, mlp_drop_->forward(m));
}

GPTShard GPTShard::whole(int64_t n_layer) {
  GPTShard s;
  for (int64_t i = 0; i < n_layer; ++i) s.blocks.push_back(i);
  return s;
}

void BlockStack::add(int64_t index, std::shared_ptr<Block> block) {
  blocks_[index] = register_module(std::to_string(index), std::move(block));
}

Tensor BlockStack::forward(const Tensor& x, int64_t begin, int64_t end) {
  Tensor h = x;
  for (int64_t i = begin; i < end; ++i) {
    auto it = blocks_.find(i);
    check(it != blocks_.end(), "[GPT] block h.", i,
          " is not held by this shard (a pipeline stage runs only its own blocks)");
    h = it->second->forward(h);
  }
  return h;
}

namespace {

void check_shard(const GPTConfig& cfg, const GPTShard& shard) {
  for (size_t k = 0; k < shard.blocks.size(); ++k) {
    int64_t i = shard.blocks[k];
    check(i >= 0 && i < cfg.n_layer, "[GPT] shard block index ", i, " is outside [0, ", cfg.n_layer,
          ")");
    check(k == 0 || shard.blocks[k - 1] < i, "[GPT] shard block indices must be increasing, got ",
          shard.blocks[k - 1], " before ", i);
  }
  check(shard.embedding || shard.head || !shard.blocks.empty(),
        "[GPT] the shard holds nothing: give it the embedding, the head or some blocks");
}

// Stream keys under the model's base seed: one Philox key per part, so that any subset of the
// parts initialises exactly as in the whole model.
constexpr uint64_t kWteStream = 0, kWpeStream = 1, kHeadStream = 2, kDropoutSeedStream = 3,
                   kFirstBlockStream = 4;

}  // namespace

GPT::GPT(const GPTConfig& cfg, Generator& gen) : GPT(cfg, gen, GPTShard::whole(cfg.n_layer)) {}

GPT::GPT(const GPTConfig& cfg, Generator& gen, const GPTShard& shard) : cfg_(cfg), shard_(shard) {
  cfg.validate();
  check_shard(cfg, shard);
  // One draw of `gen` on every shard, so the caller's stream advances the same everywhere.
  auto base = static_cast<uint64_t>(gen.randint(1ll << 62));
  auto stream = [base](uint64_t key) { return Generator(base + key); };
  Generator seeds = stream(kDropoutSeedStream);
  auto drop_seed = static_cast<uint64_t>(seeds.randint(1ll << 62));
  if (shard.embedding || (shard.head && cfg.tie_weights)) {
    Generator g = stream(kWteStream);
    wte_ = register_module("wte", std::make_shared<nn::Embedding>(
                                      nn::EmbeddingOptions{.num_embeddings = cfg.vocab_size,
                                                           .embedding_dim = cfg.n_embd,
                                                           .padding_idx = std::nullopt},
                                      g));
    nn::init::normal_(wte_->weight(), g, 0.0, 0.02);
  }
  if (shard.embedding) {
    Generator g = stream(kWpeStream);
    wpe_ = register_module("wpe", std::make_shared<nn::Embedding>(
                                      nn::EmbeddingOptions{.num_embeddings = cfg.block_size,
                                                           .embedding_dim = cfg.n_embd,
                                                           .padding_idx = std::nullopt},
                                      g));
    nn::init::normal_(wpe_->weight(), g, 0.0, 0.01);
    drop_ = register_module("drop", gpt_dropout(cfg.dropout, drop_seed));
  }
  h_ = register_module("h", std::make_shared<BlockStack>());
  for (int64_t i : shard.blocks) {
    Generator g = stream(kFirstBlockStream + static_cast<uint64_t>(i));
    h_->add(i, std::make_shared<Block>(cfg, g, drop_seed + 2 * static_cast<uint64_t>(i) + 1));
  }
  if (shard.head) {
    ln_f_ = register_module("ln_f", gpt_norm(cfg.n_embd));
    if (!cfg.tie_weights) {
      Generator g = stream(kHeadStream);
      lm_head_ = register_module("lm_head", gpt_linear(cfg.n_embd, cfg.vocab_size, false, 0.02, g));
    }
  }
}

Tensor GPT::embed(const Tensor& idx) {
  check(wpe_ != nullptr,
        "[GPT] embed: this shard has no embedding (it is not the first pipeline stage)");
  check(idx.dim() == 2 && idx.dtype() == DType::i64,
        "[GPT] expects token ids (B, T) of dtype i64, got ", idx.desc());
  int64_t T = idx.size(1);
  check(T <= cfg_.block_size, "[GPT] sequence length ", T, " exceeds block_size ", cfg_.block_size);
  if (!positions_.defined() || positions_.device() != idx.device()) {
    positions_ = arange(0, static_cast<double>(cfg_.block_size)).to(idx.device());
  }
  Tensor pos = positions_.slice(0, 0, T);                              // (T)
  return drop_->forward(add(wte_->forward(idx), wpe_->forward(pos)));  // (B, T, C)
}

Tensor GPT::run_blocks(const Tensor& x, int64_t begin, int64_t end) {
  check(0 <= begin && begin <= end && end <= cfg_.n_layer, "[GPT] run_blocks: range [", begin, ", ",
        end, ") is not within the ", cfg_.n_layer, " blocks");
  return h_->forward(x, begin, end);
}

Tensor GPT::head_logits(const Tensor& x) {
  check(ln_f_ != nullptr, "[GPT] head: this shard has no head (it is not the last pipeline stage)");
  Tensor y = ln_f_->forward(x);
  return lm_head_ ? lm_head_->forward(y) : linear(y, wte_->weight(), Tensor());  // (B, T, V)
}

Tensor GPT::head_loss(const Tensor& x, const Tensor& targets) {
  Tensor logits = head_logits(x);
  return cross_entropy(logits.reshape({-1, cfg_.vocab_size}), targets.reshape({-1}));
}

Tensor GPT::forward(const Tensor& idx) {
  return head_logits(run_blocks(embed(idx), 0, cfg_.n_layer));
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) {
  return head_loss(run_blocks(embed(idx), 0, cfg_.n_layer), targets);
}

std::vector<int64_t> GPT::generate(std::vector<int64_t> prompt, int64_t n, double temperature,
                                   Generator& gen) {
  check(!prompt.empty(), "[GPT] generate needs a non-empty prompt");
  check(temperature > 0, "[GPT] temperature must be positive, got ", temperature);
  NoGradGuard guard;
  const Device device = parameters().front().device();  // the prompt goes where the model is
  for (int64_t i = 0; i < n; ++i) {
    int64_t start = std::max<int64_t>(0, static_cast<int64_t>(prompt.size()) - cfg_.block_size);
    std::vector<int64_t> ctx(prompt.begin() + start, prompt.end());
    Tensor idx = from_vector(ctx, {1, static_cast<int64_t>(ctx.size())}, device);
    Tensor logits = forward(idx).select(1, -1).reshape({cfg_.vocab_size});
    std::vector<double> p = softmax(logits * (1.0 / temperature), 0).to_vector<double>();
    double u = gen.uniform(), acc = 0;
    int64_t pick = cfg_.vocab_size - 1;
    for (int64_t v = 0; v < cfg_.vocab_size; ++v) {
      acc += p[v];
      if (u < acc) {
        pick = v;
        break;
      }
    }
    prompt.push_back(pick);
  }
  return prompt;
}

}  // namespace strata::models
