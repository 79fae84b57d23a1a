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
  int64_t B = x.size(0), T = x.size(1), C = x.size(2), hd = C / n_head_;
  Tensor qkv = c_attn_->forward(x);  // (B, T, 3C)
  auto heads = [&](int64_t i) {      // (B, H, T, hd)
    return qkv.slice(2, i * C, (i + 1) * C).reshape({B, T, n_head_, hd}).transpose(1, 2);
  };
  Tensor y = scaled_dot_product_attention(heads(0), heads(1), heads(2), {}, true);
  y = y.transpose(1, 2).reshape({B, T, C});
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

GPT::GPT(const GPTConfig& cfg, Generator& gen) : cfg_(cfg) {
  cfg.validate();
  wte_ = register_module(
      "wte", std::make_shared<nn::Embedding>(nn::EmbeddingOptions{.num_embeddings = cfg.vocab_size,
                                                                  .embedding_dim = cfg.n_embd,
                                                                  .padding_idx = std::nullopt},
                                             gen));
  wpe_ = register_module(
      "wpe", std::make_shared<nn::Embedding>(nn::EmbeddingOptions{.num_embeddings = cfg.block_size,
                                                                  .embedding_dim = cfg.n_embd,
                                                                  .padding_idx = std::nullopt},
                                             gen));
  nn::init::normal_(wte_->weight(), gen, 0.0, 0.02);
  nn::init::normal_(wpe_->weight(), gen, 0.0, 0.01);
  // Dropout streams are seeded from the init generator so a run is one seed end to end.
  uint64_t drop_seed = static_cast<uint64_t>(gen.randint(1ll << 62));
  drop_ = register_module("drop", gpt_dropout(cfg.dropout, drop_seed));
  h_ = register_module("h", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < cfg.n_layer; ++i) {
    h_->push_back(std::make_shared<Block>(cfg, gen, drop_seed + 2 * static_cast<uint64_t>(i) + 1));
  }
  ln_f_ = register_module("ln_f", gpt_norm(cfg.n_embd));
  if (!cfg.tie_weights) {
    lm_head_ = register_module("lm_head", gpt_linear(cfg.n_embd, cfg.vocab_size, false, 0.02, gen));
  }
}

Tensor GPT::forward(const Tensor& idx) {
  check(idx.dim() == 2 && idx.dtype() == DType::i64,
        "[GPT] expects token ids (B, T) of dtype "
        "i64, got ",
        idx.desc());
  int64_t T = idx.size(1);
  check(T <= cfg_.block_size, "[GPT] sequence length ", T, " exceeds block_size ", cfg_.block_size);
  Tensor pos = arange(0, static_cast<double>(T));                                // (T)
  Tensor x = add(wte_->forward(idx), wpe_->forward(pos));                        // (B, T, C)
  x = ln_f_->forward(h_->forward(drop_->forward(x)));                            // (B, T, C)
  return lm_head_ ? lm_head_->forward(x) : linear(x, wte_->weight(), Tensor());  // (B, T, V)
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) {
  Tensor logits = forward(idx);
  return cross_entropy(logits.reshape({-1, cfg_.vocab_size}), targets.reshape({-1}));
}

std::vector<int64_t> GPT::generate(std::vector<int64_t> prompt, int64_t n, double temperature,
                                   Generator& gen) {
  check(!prompt.empty(), "[GPT] generate needs a non-empty prompt");
  check(temperature > 0, "[GPT] temperature must be positive, got ", temperature);
  NoGradGuard guard;
  for (int64_t i = 0; i < n; ++i) {
    int64_t start = std::max<int64_t>(0, static_cast<int64_t>(prompt.size()) - cfg_.block_size);
    std::vector<int64_t> ctx(prompt.begin() + start, prompt.end());
    Tensor idx = from_vector(ctx, {1, static_cast<int64_t>(ctx.size())});
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
