// Shared helpers of the golden tests: fixture paths, HDF5 group attributes and an
// element-wise comparison that reports the largest error.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata::golden {

/// Path of a fixture written by tests/golden/make_fixtures.py.
std::string fixture_path(const std::string& file);

/// Every numeric attribute of `group` in the HDF5 file `path`, as doubles (scalars have one
/// element; torch's tuples, e.g. Adam's betas, several).
std::map<std::string, std::vector<double>> read_attributes(const std::string& path,
                                                           const std::string& group);

/// |actual - expected| <= atol + rtol * |expected| element-wise, same shape. On failure the
/// message names the largest absolute error, where it is, and how many elements fail.
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double atol,
                                     double rtol);

}  // namespace strata::golden
