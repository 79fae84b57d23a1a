// Values of element-wise ops that have no other value test yet, against torch 1.13.
#include <gtest/gtest.h>

#include "core/ops.h"

namespace strata {
namespace {

TEST(Elementwise, Expm1IsAccurateNearZero) {
  // torch.expm1(torch.tensor([-1e-10, 1e-5, 0.5, -2.0], dtype=torch.float64)).tolist()
  const std::vector<double> want = {-9.999999999500001e-11, 1.0000050000166668e-05,
                                    0.6487212707001282, -0.8646647167633873};
  Tensor x = from_vector(std::vector<double>{-1e-10, 1e-5, 0.5, -2.0}, {4});
  std::vector<double> got = expm1(x).to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(got[i], want[i]) << i;
  // exp(x) - 1 loses every digit at -1e-10 in f32; expm1 keeps them (torch, float32).
  std::vector<float> got32 = expm1(x.to(DType::f32)).to_vector<float>();
  EXPECT_FLOAT_EQ(got32[0], -1.000000013351432e-10f);
  EXPECT_FLOAT_EQ(got32[1], 1.0000049769587349e-05f);
}

}  // namespace
}  // namespace strata
