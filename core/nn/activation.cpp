// Parameter-free layers forward to the element-wise and view ops.
#include "core/nn/activation.h"

#include <cmath>

#include "core/ops/elementwise.h"

namespace strata::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

LeakyReLU::LeakyReLU(const LeakyReLUOptions& options) : options_(options) {
  check(std::isfinite(options.negative_slope), "[LeakyReLU] negative_slope must be finite, got ",
        options.negative_slope);
}

Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, options_.negative_slope); }

Tensor GELU::forward(const Tensor& x) { return gelu(x, options_.tanh_approx); }

Tensor SiLU::forward(const Tensor& x) { return silu(x); }

Tensor Tanh::forward(const Tensor& x) { return tanh(x); }

Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

Tensor Flatten::forward(const Tensor& x) {
  int64_t start = wrap_dim(options_.start_dim, x.dim(), "Flatten");
  int64_t end = wrap_dim(options_.end_dim, x.dim(), "Flatten");
  check(start <= end, "[Flatten] start_dim ", options_.start_dim, " comes after end_dim ",
        options_.end_dim, " for input ", x.desc());
  return x.flatten(start, end);
}

}  // namespace strata::nn
