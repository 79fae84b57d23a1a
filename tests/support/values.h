// Small helpers shared by the value tests: deterministic inputs, element-wise comparison
// with the index of the first mismatch, and the message of an expected error.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata::testing {

/// arange(numel) reshaped to `shape`, as f64: a deterministic input both sides can rebuild.
inline Tensor ramp(const Shape& shape) {
  return arange(0, static_cast<double>(numel_of(shape)), 1, DType::f64).reshape(shape);
}

template <class A, class B>
void expect_near(const std::vector<A>& got, const std::vector<B>& want, double tol = 1e-9) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(got[i]), static_cast<double>(want[i]), tol) << "at " << i;
  }
}
// Non-template overloads so that braced literals ({1.0, 2.0}) bind to `want`.
inline void expect_near(const std::vector<double>& got, const std::vector<double>& want,
                        double tol = 1e-9) {
  expect_near<double, double>(got, want, tol);
}
/// Default tolerance for a tensor: 1e-9 for f64, 1e-5 for f32 and narrower types.
inline double default_tol(const Tensor& t) { return t.dtype() == DType::f64 ? 1e-9 : 1e-5; }
template <class B>
void expect_near(const Tensor& got, const std::vector<B>& want, double tol = -1) {
  expect_near(got.to_vector<double>(), want, tol < 0 ? default_tol(got) : tol);
}
inline void expect_near(const Tensor& got, const std::vector<double>& want, double tol = -1) {
  expect_near<double, double>(got.to_vector<double>(), want, tol < 0 ? default_tol(got) : tol);
}

/// The what() of the strata::Error that fn throws, or "no error".
inline std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

/// <system temp>/<name>, emptied and created: a test's own scratch folder.
inline std::string fresh_temp_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace strata::testing
