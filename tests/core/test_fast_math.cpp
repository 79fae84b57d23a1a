// The vectorisable f32 exp, tanh and sigmoid (core/backend/cpu/fast_exp.h) against std::
// in double, and the f32 activation kernels built on them against their f64 (std::) paths.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/backend/cpu/fast_exp.h"
#include "core/ops.h"

namespace strata {
namespace {

/// Calls fn(x) for 2 million f32 values evenly spaced over [lo, hi] plus the tiny ones.
template <class Fn>
void sweep(float lo, float hi, Fn&& fn) {
  const int n = 2'000'000;
  for (int i = 0; i <= n; ++i) fn(lo + (hi - lo) * static_cast<float>(i) / n);
  for (float t : {1e-30f, 1e-10f, 1e-5f, 3e-3f, 0.6249f, 0.625f, 0.6251f}) {
    fn(t);
    fn(-t);
  }
}

double rel_err(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-30);
}

TEST(FastMath, TanhWithinFewUlpOfStd) {
  double worst = 0;
  sweep(-20.0f, 20.0f, [&](float x) {
    worst = std::max(worst, rel_err(cpu::tanh_approx(x), std::tanh(static_cast<double>(x))));
  });
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(cpu::tanh_approx(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(cpu::tanh_approx(-0.0f)));
  EXPECT_EQ(cpu::tanh_approx(std::numeric_limits<float>::infinity()), 1.0f);
  EXPECT_EQ(cpu::tanh_approx(-std::numeric_limits<float>::infinity()), -1.0f);
  EXPECT_EQ(cpu::tanh_approx(100.0f), 1.0f);
  EXPECT_TRUE(std::isnan(cpu::tanh_approx(std::numeric_limits<float>::quiet_NaN())));
}

TEST(FastMath, SigmoidAndExpWithinFewUlpOfStd) {
  double worst_sig = 0, worst_exp = 0;
  sweep(-80.0f, 80.0f, [&](float x) {
    double xd = x;
    worst_sig = std::max(worst_sig, rel_err(cpu::fast_sigmoid(x), 1.0 / (1.0 + std::exp(-xd))));
    worst_exp = std::max(worst_exp, rel_err(cpu::fast_exp(x), std::exp(xd)));
  });
  EXPECT_LT(worst_sig, 5e-7);
  EXPECT_LT(worst_exp, 5e-7);
  EXPECT_EQ(cpu::fast_sigmoid(-200.0f), 0.0f);
  EXPECT_EQ(cpu::fast_sigmoid(200.0f), 1.0f);
}

TEST(FastMath, F32ActivationsMatchF64Path) {
  // Forward and fused backward of each activation on the fast f32 path against f64 (std::).
  std::vector<double> v;
  for (int i = -4000; i <= 4000; ++i) v.push_back(i * 0.0025);  // [-10, 10]
  Tensor x64 = from_vector<double>(v, {static_cast<int64_t>(v.size())});
  using Fn = Tensor (*)(const Tensor&);
  struct Case {
    const char* name;
    Fn fn;
  };
  for (Case c : {Case{"tanh", [](const Tensor& t) { return tanh(t); }},
                 Case{"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
                 Case{"silu", [](const Tensor& t) { return silu(t); }},
                 Case{"exp", [](const Tensor& t) { return exp(t); }},
                 Case{"gelu_tanh", [](const Tensor& t) { return gelu(t, true); }}}) {
    std::vector<double> want_y, want_g, got_y, got_g;
    for (DType dt : {DType::f64, DType::f32}) {
      Tensor x = x64.to(dt).detach();
      x.set_requires_grad();
      Tensor y = c.fn(x);
      sum(y).backward();
      (dt == DType::f64 ? want_y : got_y) = y.to_vector<double>();
      (dt == DType::f64 ? want_g : got_g) = x.grad().to_vector<double>();
    }
    for (size_t i = 0; i < v.size(); ++i) {
      // Absolute floor: gelu and silu cross zero, where relative error is meaningless.
      ASSERT_NEAR(got_y[i], want_y[i], 1e-6 * std::max(1.0, std::abs(want_y[i])))
          << c.name << " at x=" << v[i];
      // Derivatives cancel in 1 - s (s = sigmoid near 1), so f32 itself loses a few ulp.
      ASSERT_NEAR(got_g[i], want_g[i], 4e-6 * std::max(1.0, std::abs(want_g[i])))
          << c.name << "' at x=" << v[i];
    }
  }
}

}  // namespace
}  // namespace strata
