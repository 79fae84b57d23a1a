// Batched matmul's two CPU paths (batch split over OpenMP threads, or one OpenBLAS-threaded
// GEMM after another) against single-matrix products, which take neither.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"

namespace strata {
namespace {

/// max |a - b| over all elements.
double max_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  EXPECT_EQ(av.size(), bv.size());
  double d = 0;
  for (size_t i = 0; i < av.size() && i < bv.size(); ++i) d = std::max(d, std::abs(av[i] - bv[i]));
  return d;
}

TEST(GemmPaths, BatchedMatmulMatchesOneMatrixAtATime) {
  Generator gen(21);
  // (batch, m, k, n): tiny (below the fork threshold), small and split, large and split
  // evenly (attention-shaped), large with an odd batch (OpenBLAS threads each GEMM).
  const int64_t cases[][4] = {{3, 4, 5, 6}, {16, 20, 24, 28}, {6, 96, 64, 96}, {3, 80, 72, 88}};
  for (auto [batch, m, k, n] : cases) {
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor a = randn({batch, m, k}, gen, dt), b = randn({batch, k, n}, gen, dt);
      // b transposed in memory: the GEMM reads it with CblasTrans on either path.
      Tensor bt = randn({batch, n, k}, gen, dt).transpose(1, 2);
      Tensor c = matmul(a, b), ct = matmul(a, bt);
      const double tol = dt == DType::f32 ? 1e-5 : 1e-12;
      for (int64_t i = 0; i < batch; ++i) {
        Tensor ai = a.select(0, i);
        EXPECT_LT(max_diff(c.select(0, i), matmul(ai, b.select(0, i))), tol)
            << "batch " << batch << " m " << m << " item " << i;
        EXPECT_LT(max_diff(ct.select(0, i), matmul(ai, bt.select(0, i))), tol)
            << "batch " << batch << " m " << m << " item " << i << " (transposed b)";
      }
    }
  }
}

}  // namespace
}  // namespace strata
