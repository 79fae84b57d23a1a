// Reductions: sum, mean, max/min (gradient split evenly among ties), var, argmax.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace strata {

/// Sum over `dims` (all dims when empty).
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Maximum over `dims` (all when empty); ties share the gradient evenly.
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
/// Variance over `dims`; unbiased divides by n - 1 as torch.var does by default.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, bool unbiased = true,
           bool keepdim = false);
/// Index of the maximum along `dim`, as i64 (no gradient).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace strata
