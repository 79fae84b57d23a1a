// Linear: y = x W^T + b, with torch's default initialisation.
#pragma once

#include "core/nn/module.h"
#include "core/random.h"

namespace strata::nn {

struct LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
};

class Linear : public Layer {
 public:
  /// weight ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5), as torch), bias
  /// likewise.
  Linear(const LinearOptions& options, Generator& gen);
  /// x (..., in_features) -> (..., out_features).
  Tensor forward(const Tensor& x) override;

  const LinearOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }  // (out_features, in_features)
  const Tensor& bias() const { return bias_; }      // (out_features) or undefined

 private:
  LinearOptions options_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace strata::nn
