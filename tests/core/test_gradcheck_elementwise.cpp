// Finite-difference checks (f64) of element-wise, reduction, view and matmul gradients,
// including double backward.
#include <gtest/gtest.h>

#include <cmath>

#include "core/backend/backend.h"
#include "tests/support/gradcheck.h"

namespace strata {
namespace {

using testing::gradcheck;
using testing::gradgradcheck;
using testing::leaf;
using V = std::vector<Tensor>;

TEST(GradcheckElementwise, BinaryWithBroadcasting) {
  Tensor a = leaf({2, 3}, 1), b = leaf({3}, 2, 0.5, 1.5);
  EXPECT_TRUE(gradcheck([](const V& x) { return add(x[0], x[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return sub(x[0], x[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return mul(x[0], x[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return div(x[0], x[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return maximum(x[0], x[1]); }, {a, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return minimum(x[0], x[1]); }, {a, b}));
  Tensor p = leaf({2, 3}, 3, 0.5, 2);
  EXPECT_TRUE(gradcheck([](const V& x) { return pow(x[0], x[1]); }, {p, b}));
  EXPECT_TRUE(gradcheck([](const V& x) { return pow(x[0], 3.5); }, {p}));
}

TEST(GradcheckElementwise, Unary) {
  Tensor x = leaf({3, 4}, 4);
  Tensor pos = leaf({3, 4}, 5, 0.2, 2.0);
  std::vector<std::pair<const char*, testing::TensorFn>> cases = {
      {"neg", [](const V& v) { return neg(v[0]); }},
      {"exp", [](const V& v) { return exp(v[0]); }},
      {"tanh", [](const V& v) { return tanh(v[0]); }},
      {"sigmoid", [](const V& v) { return sigmoid(v[0]); }},
      {"relu", [](const V& v) { return relu(v[0]); }},
      {"leaky_relu", [](const V& v) { return leaky_relu(v[0], 0.2); }},
      {"gelu", [](const V& v) { return gelu(v[0]); }},
      {"gelu_tanh", [](const V& v) { return gelu(v[0], true); }},
      {"silu", [](const V& v) { return silu(v[0]); }},
      {"sin", [](const V& v) { return sin(v[0]); }},
      {"cos", [](const V& v) { return cos(v[0]); }},
      {"erf", [](const V& v) { return erf(v[0]); }},
      {"square", [](const V& v) { return square(v[0]); }},
      {"abs", [](const V& v) { return abs(v[0]); }},
      {"clamp", [](const V& v) { return clamp(v[0], -0.5, 0.5); }},
      {"sign", [](const V& v) { return add(sign(v[0]), v[0]); }},
      {"expm1", [](const V& v) { return expm1(v[0]); }},
  };
  for (auto& [name, fn] : cases) EXPECT_TRUE(gradcheck(fn, {x})) << name;
  std::vector<std::pair<const char*, testing::TensorFn>> positive = {
      {"log", [](const V& v) { return log(v[0]); }},
      {"sqrt", [](const V& v) { return sqrt(v[0]); }},
      {"rsqrt", [](const V& v) { return rsqrt(v[0]); }},
      {"reciprocal", [](const V& v) { return reciprocal(v[0]); }},
      {"log1p", [](const V& v) { return log1p(v[0]); }},
  };
  for (auto& [name, fn] : positive) EXPECT_TRUE(gradcheck(fn, {pos})) << name;
}

TEST(GradcheckElementwise, WhereAndViews) {
  Tensor a = leaf({2, 3}, 6), b = leaf({2, 3}, 7);
  Tensor cond = gt(a.detach(), scalar_like(0, a));
  EXPECT_TRUE(gradcheck([cond](const V& x) { return where(cond, x[0], x[1]); }, {a, b}));
  Tensor c = leaf({2, 3, 4}, 8);
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].permute({2, 0, 1}).reshape({4, 6}); }, {c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].transpose(0, 2).flatten(); }, {c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].slice(2, 1, 4, 2); }, {c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].select(1, 1); }, {c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].unsqueeze(1).expand({2, 5, 3, 4}); }, {c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].clone(); }, {c}));
  EXPECT_TRUE(gradcheck([](const V& x) { return x[0].to(DType::f32).to(DType::f64); }, {c},
                        {.eps = 1e-3, .atol = 1e-3, .rtol = 1e-3}));
  EXPECT_TRUE(gradcheck(
      [](const V& x) {
        return slice_scatter(x[0], {2, 6, 4}, 1, 1, 6, 2);
      },
      {c}));
}

TEST(GradcheckElementwise, DeviceCopy) {
  // to_device is recorded only between two devices; the coverage guard excuses it only
  // where no CUDA device exists.
  if (cuda_backend().device_count() == 0) GTEST_SKIP() << "needs a CUDA device";
  Tensor x = leaf({2, 3}, 25);
  EXPECT_TRUE(gradcheck([](const V& v) { return v[0].to(Device::cuda()).to(Device::cpu()); }, {x}));
  EXPECT_TRUE(testing::checked_ops().count("to_device"));
}

TEST(GradcheckElementwise, Reductions) {
  Tensor x = leaf({3, 4, 2}, 9);
  EXPECT_TRUE(gradcheck([](const V& v) { return sum(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return sum(v[0], {0, 2}, true); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return mean(v[0], {1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return max(v[0], {1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return min(v[0], {0}); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return var(v[0], {2}); }, {x}));
  EXPECT_TRUE(gradcheck([](const V& v) { return var(v[0], {0, 1}, false, true); }, {x}));
}

TEST(GradcheckElementwise, MatmulAndLinear) {
  Tensor a = leaf({3, 4}, 10), b = leaf({4, 5}, 11);
  EXPECT_TRUE(gradcheck([](const V& x) { return matmul(x[0], x[1]); }, {a, b}));
  Tensor ba = leaf({2, 3, 4}, 12), bb = leaf({2, 4, 5}, 13);
  EXPECT_TRUE(gradcheck([](const V& x) { return matmul(x[0], x[1]); }, {ba, bb}));
  EXPECT_TRUE(gradcheck([](const V& x) { return matmul(x[0], x[1]); }, {ba, b}));
  Tensor vec = leaf({4}, 14);
  EXPECT_TRUE(gradcheck([](const V& x) { return matmul(x[0], x[1]); }, {a, vec}));
  Tensor w = leaf({5, 4}, 15), bias = leaf({5}, 16);
  EXPECT_TRUE(gradcheck([](const V& x) { return linear(x[0], x[1], x[2]); }, {ba, w, bias}));
  EXPECT_TRUE(gradcheck([](const V& x) { return linear(x[0], x[1], Tensor()); }, {a, w}));
}

TEST(GradcheckElementwise, DoubleBackward) {
  Tensor x = leaf({2, 3}, 17), y = leaf({2, 3}, 18, 0.5, 1.5);
  EXPECT_TRUE(gradgradcheck([](const V& v) { return mul(tanh(v[0]), v[1]); }, {x, y}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return div(exp(v[0]), v[1]); }, {x, y}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return sigmoid(v[0]) * gelu(v[1]); }, {x, y}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return leaky_relu(v[0], 0.2) * silu(v[1]); }, {x, y}));
  Tensor a = leaf({3, 4}, 19), b = leaf({4, 2}, 20);
  EXPECT_TRUE(gradgradcheck([](const V& v) { return tanh(matmul(v[0], v[1])); }, {a, b}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return square(sum(v[0], {1})); }, {a}));
  EXPECT_TRUE(gradgradcheck([](const V& v) { return var(v[0], {1}); }, {a}));
}

TEST(Autograd, HooksFireOnceWithTheCompleteGradient) {
  Tensor w = leaf({3}, 21);
  int calls = 0;
  std::vector<double> seen;
  w.register_grad_ready_hook([&](Tensor& t) {
    ++calls;
    seen = t.grad().to_vector<double>();
  });
  Tensor loss = sum(w * 2.0) + sum(w * 3.0);
  loss.backward();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, std::vector<double>(3, 5.0));
}

TEST(Autograd, SecondBackwardWithoutRetainGraphIsAClearError) {
  Tensor w = leaf({3}, 22);
  Tensor loss = sum(exp(w));
  loss.backward();
  try {
    loss.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph=true"), std::string::npos) << e.what();
  }
  Tensor w2 = leaf({3}, 23);
  Tensor l2 = sum(exp(w2));
  l2.backward({}, true);
  l2.backward();
  EXPECT_NEAR(w2.grad().to_vector<double>()[0], 2 * std::exp(w2.to_vector<double>()[0]), 1e-12);
}

TEST(Autograd, NoGradAndDetachCutTheGraph) {
  Tensor w = leaf({3}, 24);
  {
    NoGradGuard guard;
    EXPECT_FALSE((w * 2.0).requires_grad());
  }
  EXPECT_FALSE(w.detach().requires_grad());
  EXPECT_TRUE((w * 2.0).requires_grad());
}

}  // namespace
}  // namespace strata
