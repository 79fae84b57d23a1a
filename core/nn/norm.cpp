// Normalisation layers: option checks, parameters and buffers, and torch's rules for when
// running statistics are used and updated.
#include "core/nn/norm.h"

#include <string>

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/ops/norm.h"

namespace strata::nn {
namespace {

void check_eps(const char* layer, double eps) {
  check(eps > 0, "[", layer, "] eps must be positive, got ", eps);
}

}  // namespace

BatchNorm::BatchNorm(const char* layer, const BatchNormOptions& options, int64_t min_dim,
                     int64_t max_dim)
    : layer_(layer), options_(options), min_dim_(min_dim), max_dim_(max_dim) {
  int64_t c = options.num_features;
  check(c > 0, "[", layer, "] num_features must be positive, got ", c);
  check_eps(layer, options.eps);
  check(!options.momentum || (*options.momentum >= 0 && *options.momentum <= 1), "[", layer,
        "] momentum must be in [0, 1], got ", options.momentum.value_or(0));
  if (options.affine) {
    weight_ = register_parameter("weight", ones({c}));
    bias_ = register_parameter("bias", zeros({c}));
  }
  if (options.track_running_stats) {
    running_mean_ = register_buffer("running_mean", zeros({c}));
    running_var_ = register_buffer("running_var", ones({c}));
    num_batches_tracked_ = register_buffer("num_batches_tracked", zeros({}, DType::i64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  check(x.dim() >= min_dim_ && x.dim() <= max_dim_ && x.size(1) == options_.num_features, "[",
        layer_, "] expected input ", min_dim_ == 4 ? "(N, C, H, W)" : "(N, C) or (N, C, L)",
        " with C = ", options_.num_features, ", got ", x.desc());
  double momentum = options_.momentum.value_or(0.0);
  bool tracking = options_.track_running_stats;
  if (is_training() && tracking) {
    NoGradGuard no_grad;
    add_(num_batches_tracked_, scalar_like(1, num_batches_tracked_));
    if (!options_.momentum) momentum = 1.0 / num_batches_tracked_.item();
  }
  // torch: batch statistics in training or when nothing is tracked; the running buffers
  // are updated only in training.
  bool use_batch_stats = is_training() || !tracking;
  Tensor mean = tracking ? running_mean_ : Tensor();
  Tensor var = tracking ? running_var_ : Tensor();
  return batch_norm(x, mean, var, weight_, bias_, use_batch_stats, momentum, options_.eps);
}

LayerNorm::LayerNorm(const LayerNormOptions& options) : options_(options) {
  check(!options.normalized_shape.empty(), "[LayerNorm] normalized_shape must not be empty");
  for (int64_t d : options.normalized_shape) {
    check(d > 0, "[LayerNorm] normalized_shape must be positive, got ",
          shape_str(options.normalized_shape));
  }
  check_eps("LayerNorm", options.eps);
  if (options.elementwise_affine) {
    weight_ = register_parameter("weight", ones(options.normalized_shape));
    bias_ = register_parameter("bias", zeros(options.normalized_shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  const Shape& ns = options_.normalized_shape;
  auto n = static_cast<int64_t>(ns.size());
  bool ok = x.dim() >= n && Shape(x.shape().end() - n, x.shape().end()) == ns;
  std::string dims = shape_str(ns);  // "[a, b]" -> "a, b"
  check(ok, "[LayerNorm] expected input (..., ", dims.substr(1, dims.size() - 2),
        ") (normalized_shape), got ", x.desc());
  return layer_norm(x, ns, weight_, bias_, options_.eps);
}

GroupNorm::GroupNorm(const GroupNormOptions& options) : options_(options) {
  check(options.num_groups > 0, "[GroupNorm] num_groups must be positive, got ",
        options.num_groups);
  check(options.num_channels > 0, "[GroupNorm] num_channels must be positive, got ",
        options.num_channels);
  check(options.num_channels % options.num_groups == 0, "[GroupNorm] num_channels (",
        options.num_channels, ") must be divisible by num_groups (", options.num_groups, ")");
  check_eps("GroupNorm", options.eps);
  if (options.affine) {
    weight_ = register_parameter("weight", ones({options.num_channels}));
    bias_ = register_parameter("bias", zeros({options.num_channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) {
  check(x.dim() >= 2 && x.size(1) == options_.num_channels, "[GroupNorm] expected input (N, ",
        options_.num_channels, ", ...), got ", x.desc());
  return group_norm(x, options_.num_groups, weight_, bias_, options_.eps);
}

InstanceNorm2d::InstanceNorm2d(const InstanceNormOptions& options) : options_(options) {
  check(options.num_features > 0, "[InstanceNorm2d] num_features must be positive, got ",
        options.num_features);
  check_eps("InstanceNorm2d", options.eps);
  if (options.affine) {
    weight_ = register_parameter("weight", ones({options.num_features}));
    bias_ = register_parameter("bias", zeros({options.num_features}));
  }
}

Tensor InstanceNorm2d::forward(const Tensor& x) {
  check(x.dim() == 4 && x.size(1) == options_.num_features, "[InstanceNorm2d] expected input (N, ",
        options_.num_features, ", H, W), got ", x.desc());
  return instance_norm(x, weight_, bias_, options_.eps);
}

}  // namespace strata::nn
