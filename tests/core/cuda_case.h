// Shared by the CUDA-vs-CPU tests (tests/core/test_cuda_*.cpp): a case runs an op on both
// devices from the same inputs and compares every output and gradient with dtype-scaled
// tolerances; without a GPU the CUDA half skips, saying why.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend/cuda/availability.h"
#include "core/ops.h"
#include "tests/support/values.h"

namespace strata::cuda_case {

using Outs = std::vector<Tensor>;

/// One op run on `device` from inputs of dtype `dtype` built on the CPU; returns outputs
/// followed by gradients.
using Run = std::function<Outs(Device device, DType dtype)>;

struct OpCase {
  std::string name;
  DType dtype;
  Run run;
  double tol_scale = 1;  // for ops that sum many rounded terms (GEMMs, TF32)
};

inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

/// Relative-and-absolute tolerance of a dtype: a few units in the last place of what the
/// kernels compute, allowing for a different summation order on the GPU.
inline double tolerance(DType t) {
  switch (t) {
    case DType::f64:
      return 1e-10;
    case DType::f32:
      return 2e-5;
    case DType::bf16:
      return 2e-2;
    case DType::f16:
      return 4e-3;
    default:
      return 0;  // integers, bools and masks match exactly
  }
}

/// A leaf input in [lo, hi) from a fixed seed: the same values on both devices.
inline Tensor input(Device d, DType t, const Shape& shape, uint64_t seed, double lo = -2,
                    double hi = 2, bool grad = true) {
  Generator gen(seed);
  Tensor x = rand(shape, gen, DType::f64, lo, hi).to(t).to(d).detach();
  if (grad && is_floating(t)) x.set_requires_grad();
  return x;
}

inline Tensor indices(Device d, const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector<int64_t>(v, shape, d);
}

/// y, then the gradients of `xs` under the loss sum(y * w) with fixed weights w.
inline Outs with_grads(const Tensor& y, const std::vector<Tensor>& xs) {
  Generator gen(4242);
  Tensor w = rand(y.shape(), gen, DType::f64, -1, 1).to(y.dtype()).to(y.device());
  sum(mul(y, w)).backward();
  Outs out{y.detach()};
  for (const Tensor& x : xs) out.push_back(x.grad());
  return out;
}

inline std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream os;
  os << '[';
  for (size_t d = 0; d < idx.size(); ++d) os << (d ? ", " : "") << idx[d];
  os << ']';
  return os.str();
}

/// Compares got (CUDA) with want (CPU); on failure prints the first mismatches with indices.
inline void expect_close(const std::string& what, const Tensor& got, const Tensor& want,
                         double tol) {
  ASSERT_EQ(got.defined(), want.defined()) << what << ": defined on one device only";
  if (!got.defined()) return;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_TRUE(got.device().is_cuda()) << what << " was computed on " << got.device();
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  std::ostringstream first;
  int64_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool same = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i] ||
                      std::abs(g[i] - w[i]) <= tol * (1 + std::abs(w[i]));
    if (same) continue;
    if (++bad <= 8) {
      first << "\n  at " << index_str(static_cast<int64_t>(i), got.shape()) << ": cuda " << g[i]
            << ", cpu " << w[i] << " (diff " << std::abs(g[i] - w[i]) << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what << " " << got.desc() << ": " << bad << " of " << g.size()
                    << " elements differ beyond tolerance " << tol << "; first:" << first.str();
}

/// Runs `c` on the CPU and on cuda:0 and compares; skips (saying why) without a GPU.
inline void expect_cuda_matches_cpu(const OpCase& c) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  Outs want = c.run(Device::cpu(), c.dtype);
  Outs got = c.run(Device::cuda(0), c.dtype);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const DType dt = want[i].defined() ? want[i].dtype() : c.dtype;
    expect_close(str_cat(c.name, " output ", i), got[i], want[i], tolerance(dt) * c.tol_scale);
  }
}

/// The CPU half of `c`: every output is defined and finite.
inline void expect_cpu_reference_finite(const OpCase& c) {
  Outs want = c.run(Device::cpu(), c.dtype);
  ASSERT_FALSE(want.empty()) << c.name;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(want[i].defined()) << c.name << " output " << i;
    std::vector<double> v = want[i].to_vector<double>();
    int64_t bad = 0;
    for (double x : v) bad += std::isfinite(x) ? 0 : 1;
    EXPECT_EQ(bad, 0) << c.name << " output " << i << " " << want[i].desc() << " has " << bad
                      << " non-finite values";
  }
}

}  // namespace strata::cuda_case
