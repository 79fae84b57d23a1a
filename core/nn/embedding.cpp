// Embedding and Dropout layers: option checks and torch's default init.
#include "core/nn/embedding.h"

#include "core/autograd/grad_mode.h"
#include "core/nn/init.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"

namespace strata::nn {

Embedding::Embedding(const EmbeddingOptions& options, Generator& gen) : options_(options) {
  int64_t n = options.num_embeddings;
  check(n > 0, "[Embedding] num_embeddings must be positive, got ", n);
  check(options.embedding_dim > 0, "[Embedding] embedding_dim must be positive, got ",
        options.embedding_dim);
  if (options.padding_idx) {
    int64_t p = *options.padding_idx;
    check(p >= -n && p < n, "[Embedding] padding_idx must be in [", -n, ", ", n, "), got ", p);
    padding_idx_ = p < 0 ? p + n : p;
  }
  weight_ = register_parameter("weight", empty({n, options.embedding_dim}));
  init::normal_(weight_, gen);
  if (padding_idx_ >= 0) {
    NoGradGuard no_grad;
    Tensor row = weight_.detach().select(0, padding_idx_);
    fill_(row, 0.0);
  }
}

Tensor Embedding::forward(const Tensor& indices) {
  check(indices.dtype() == DType::i64 || indices.dtype() == DType::i32,
        "[Embedding] indices must be integers (i64), got ", indices.desc());
  Tensor idx = indices.dtype() == DType::i64 ? indices : indices.to(DType::i64);
  return embedding(weight_, idx, padding_idx_);
}

Dropout::Dropout(const DropoutOptions& options, Generator gen) : options_(options), gen_(gen) {
  check(options.p >= 0 && options.p <= 1, "[Dropout] p must be in [0, 1], got ", options.p);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || options_.p == 0) return x;
  // 1/(1-p) is infinite at p = 1; everything is dropped, and the graph still reaches x.
  if (options_.p == 1) return x * 0.0;
  return dropout(x, options_.p, true, gen_);
}

}  // namespace strata::nn
