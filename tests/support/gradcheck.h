// Finite-difference gradient checks in float64, and the registry that makes the gradcheck
// suite fail when a differentiable op has no check.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/ops.h"

namespace strata::testing {

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 7;
};

/// Compares autograd's gradient of sum(fn(inputs) * v) for a random v with central finite
/// differences, for every element of every input that requires grad. Inputs must be f64.
::testing::AssertionResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opts = {});

/// gradcheck of the first-order gradient itself (create_graph), i.e. double backward.
::testing::AssertionResult gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                         const GradcheckOptions& opts = {});

/// f64 leaf tensor of `shape` with values in [lo, hi) that requires grad.
Tensor leaf(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1);

/// Names of every graph node that a gradcheck has differentiated through in this process.
/// When $STRATA_GRADCHECK_COVERAGE_DIR is set (CTest sets it for the gradcheck label), they
/// are written there at exit for tests/support/test_gradcheck_coverage.cpp.
std::set<std::string>& checked_ops();

/// The source directory: $STRATA_SOURCE_DIR if set, else the checkout CMake configured.
std::string source_dir();

}  // namespace strata::testing
