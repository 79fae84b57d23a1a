// Embedding lookup and Dropout layers (the ops live in core/ops/embedding.h).
#pragma once

#include <optional>

#include "core/nn/module.h"
#include "core/random.h"

namespace strata::nn {

struct EmbeddingOptions {
  int64_t num_embeddings = 0;
  int64_t embedding_dim = 0;
  /// Row that stays zero and gets no gradient; negative counts from the end, as torch.
  std::optional<int64_t> padding_idx;
};

class Embedding : public Layer {
 public:
  /// weight ~ N(0, 1) with the padding row zeroed, as torch.
  Embedding(const EmbeddingOptions& options, Generator& gen);
  /// indices i64 (...) -> (..., embedding_dim).
  Tensor forward(const Tensor& indices) override;

  const EmbeddingOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }  // (num_embeddings, embedding_dim)

 private:
  EmbeddingOptions options_;
  int64_t padding_idx_ = -1;  // wrapped to [0, num_embeddings), or -1 for none
  Tensor weight_;
};

struct DropoutOptions {
  double p = 0.5;
};

/// Inverted dropout in training, the identity in eval. Owns its generator, so its masks are
/// reproducible and its state can be checkpointed.
class Dropout : public Layer {
 public:
  Dropout(const DropoutOptions& options, Generator gen);
  Tensor forward(const Tensor& x) override;

  const DropoutOptions& options() const { return options_; }
  Generator& generator() { return gen_; }

 private:
  DropoutOptions options_;
  Generator gen_;
};

}  // namespace strata::nn
