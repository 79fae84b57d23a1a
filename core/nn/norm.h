// Normalisation layers: BatchNorm1d/2d (running statistics as buffers), LayerNorm,
// GroupNorm and InstanceNorm2d, over the ops in core/ops/norm.h.
#pragma once

#include <optional>

#include "core/nn/module.h"

namespace strata::nn {

struct BatchNormOptions {
  int64_t num_features = 0;
  double eps = 1e-5;
  /// Weight of the new batch in the running averages; nullopt = cumulative average.
  std::optional<double> momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

/// Shared by BatchNorm1d and BatchNorm2d. Parameters weight = 1, bias = 0 (C); buffers
/// running_mean = 0, running_var = 1 (C) and num_batches_tracked (i64 scalar), as torch.
class BatchNorm : public Layer {
 public:
  Tensor forward(const Tensor& x) override;

  const BatchNormOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }

 protected:
  /// `layer` names the class in messages; inputs must have one of the dims in [min, max].
  BatchNorm(const char* layer, const BatchNormOptions& options, int64_t min_dim, int64_t max_dim);

 private:
  const char* layer_;
  BatchNormOptions options_;
  int64_t min_dim_, max_dim_;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

/// x (N, C) or (N, C, L).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(const BatchNormOptions& options) : BatchNorm("BatchNorm1d", options, 2, 3) {}
};

/// x (N, C, H, W).
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(const BatchNormOptions& options) : BatchNorm("BatchNorm2d", options, 4, 4) {}
};

struct LayerNormOptions {
  Shape normalized_shape;
  double eps = 1e-5;
  bool elementwise_affine = true;
};

/// Normalises over the trailing normalized_shape; weight = 1, bias = 0 of that shape.
class LayerNorm : public Layer {
 public:
  explicit LayerNorm(const LayerNormOptions& options);
  Tensor forward(const Tensor& x) override;

  const LayerNormOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  LayerNormOptions options_;
  Tensor weight_, bias_;
};

struct GroupNormOptions {
  int64_t num_groups = 0;
  int64_t num_channels = 0;
  double eps = 1e-5;
  bool affine = true;
};

/// x (N, C, ...) normalised over groups of C / num_groups channels; weight = 1, bias = 0 (C).
class GroupNorm : public Layer {
 public:
  explicit GroupNorm(const GroupNormOptions& options);
  Tensor forward(const Tensor& x) override;

  const GroupNormOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  GroupNormOptions options_;
  Tensor weight_, bias_;
};

struct InstanceNormOptions {
  int64_t num_features = 0;
  double eps = 1e-5;
  bool affine = false;  // torch's default for instance norm
};

/// x (N, C, H, W), each (sample, channel) plane normalised; batch statistics in train and
/// eval alike (torch's track_running_stats=False, the default).
class InstanceNorm2d : public Layer {
 public:
  explicit InstanceNorm2d(const InstanceNormOptions& options);
  Tensor forward(const Tensor& x) override;

  const InstanceNormOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  InstanceNormOptions options_;
  Tensor weight_, bias_;
};

}  // namespace strata::nn
