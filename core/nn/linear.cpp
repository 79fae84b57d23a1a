// Linear layer: option checks, torch's default init and the forward through ops::linear.
#include "core/nn/linear.h"

#include <cmath>

#include "core/nn/init.h"
#include "core/ops/linalg.h"

namespace strata::nn {

Linear::Linear(const LinearOptions& options, Generator& gen) : options_(options) {
  check(options.in_features > 0, "[Linear] in_features must be positive, got ",
        options.in_features);
  check(options.out_features > 0, "[Linear] out_features must be positive, got ",
        options.out_features);
  weight_ = register_parameter("weight", empty({options.out_features, options.in_features}));
  init::kaiming_uniform_(weight_, gen, std::sqrt(5.0));
  if (options.bias) {
    double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features));
    bias_ = register_parameter("bias", empty({options.out_features}));
    init::uniform_(bias_, gen, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) {
  check(x.dim() >= 1 && x.size(-1) == options_.in_features, "[Linear] expected input (..., ",
        options_.in_features, ") (in_features), got ", x.desc());
  return linear(x, weight_, bias_);
}

}  // namespace strata::nn
