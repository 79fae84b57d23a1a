// In-memory datasets of the first jobs: labelled images (Fashion-MNIST) and character text.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace strata::io {

struct ImageSet {
  Tensor images;  // (N, C, H, W) u8
  Tensor labels;  // (N) i64
  int64_t num_classes = 0;
};

/// Fashion-MNIST (or MNIST) from `dir` holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz];
/// split is "train" or "test".
ImageSet load_mnist_format(const std::string& dir, const std::string& split);

/// Gathers samples `idx` as f32 (B, C, H, W) scaled to [0, 1] then (x - mean) / std, and
/// their labels (B) i64.
std::pair<Tensor, Tensor> image_batch(const ImageSet& set, const std::vector<int64_t>& idx,
                                      double mean, double std);

struct TextCorpus {
  std::string text;
  std::vector<unsigned char> vocab;  // sorted distinct bytes; token id = position
  Tensor tokens;                     // (N) i64
  int64_t vocab_size() const { return static_cast<int64_t>(vocab.size()); }
  std::string decode(const std::vector<int64_t>& ids) const;
};

/// Reads a text file, or every regular file of a directory (sorted, skipping fortune's *.dat
/// indexes and links), as bytes with a character vocabulary.
TextCorpus load_text(const std::string& path);

/// `batch` windows of `block`+1 tokens at random offsets in tokens[lo, hi): inputs (B, T)
/// and next-token targets (B, T).
std::pair<Tensor, Tensor> text_batch(const Tensor& tokens, int64_t lo, int64_t hi, int64_t batch,
                                     int64_t block, Generator& gen);

}  // namespace strata::io
