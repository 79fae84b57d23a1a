// The direct f32 convolution kernels (core/backend/cpu/conv_direct.cpp) against the f64
// im2col + GEMM path: forward, input gradient, weight gradient and conv_transpose2d.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/backend/cpu/conv_direct.h"
#include "core/ops.h"
#include "core/ops/conv.h"

namespace strata {
namespace {

struct Case {
  Shape x, w;
  Conv2dParams p;
  bool bias;
};

cpu::ConvGeometry geometry_of(const Case& c, const Shape& y) {
  cpu::ConvGeometry g;
  g.batch = c.x[0];
  g.in_channels = c.x[1];
  g.in_h = c.x[2];
  g.in_w = c.x[3];
  g.out_channels = c.w[0];
  g.out_h = y[2];
  g.out_w = y[3];
  g.kernel_h = c.w[2];
  g.kernel_w = c.w[3];
  g.pad_h = c.p.padding[0];
  g.pad_w = c.p.padding[1];
  return g;
}

/// max |a - b| / max(1, max |b|) over all elements.
double rel_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  EXPECT_EQ(av.size(), bv.size());
  double diff = 0, scale = 1;
  for (size_t i = 0; i < av.size() && i < bv.size(); ++i) {
    diff = std::max(diff, std::abs(av[i] - bv[i]));
    scale = std::max(scale, std::abs(bv[i]));
  }
  return diff / scale;
}

/// Runs conv2d (or conv_transpose2d) forward and backward in `dt` on the f64 leaves given.
std::vector<Tensor> run(const Case& c, bool transpose, const std::vector<Tensor>& leaves,
                        const Tensor& gy, DType dt) {
  std::vector<Tensor> in;
  for (const Tensor& t : leaves) {
    in.push_back(t.defined() ? t.to(dt).detach() : Tensor());
    if (in.back().defined()) in.back().set_requires_grad();
  }
  Tensor y =
      transpose ? conv_transpose2d(in[0], in[1], in[2], c.p) : conv2d(in[0], in[1], in[2], c.p);
  y.backward(gy.to(dt));
  std::vector<Tensor> out{y, in[0].grad(), in[1].grad()};
  if (in[2].defined()) out.push_back(in[2].grad());
  return out;
}

TEST(ConvDirect, MatchesIm2colPathForwardAndBackward) {
  Generator gen(11);
  const Case cases[] = {
      // ResNet's 3x3 convs, an odd batch split over threads.
      {{5, 16, 16, 16}, {16, 16, 3, 3}, {.padding = {1, 1}}, false},
      // C_out not a multiple of the 4-channel block, 25 taps (not a multiple of 3), bias.
      {{3, 3, 8, 24}, {6, 3, 5, 5}, {.padding = {2, 2}}, true},
      // An unpadded (3, 1) kernel: only the height shrinks.
      {{2, 5, 9, 16}, {7, 5, 3, 1}, {}, false},
      // 8x8 planes, a batch taken in groups of 16 with a remainder by the weight gradient.
      {{37, 8, 8, 8}, {12, 8, 3, 3}, {.padding = {1, 1}}, true},
  };
  for (const Case& c : cases) {
    Tensor x = randn(c.x, gen, DType::f64), w = randn(c.w, gen, DType::f64);
    Tensor b = c.bias ? randn({c.w[0]}, gen, DType::f64) : Tensor();
    Tensor y64 = conv2d(x, w, b, c.p);
    // Builds without AVX2 compare im2col with itself; AVX2 builds must take the direct path.
    EXPECT_EQ(cpu::direct_conv_supported(geometry_of(c, y64.shape())), cpu::direct_conv_built())
        << x.desc();
    Tensor gy = randn(y64.shape(), gen, DType::f64);
    auto want = run(c, false, {x, w, b}, gy, DType::f64);
    auto got = run(c, false, {x, w, b}, gy, DType::f32);
    const char* names[] = {"y", "x.grad", "w.grad", "b.grad"};
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_LT(rel_diff(got[i], want[i]), 2e-5) << names[i] << " for x " << x.desc();
    }
  }
}

TEST(ConvDirect, ConvTransposeStrideOneMatchesIm2colPath) {
  // conv_transpose2d's forward is conv2d's input gradient; its input gradient is conv2d.
  Generator gen(12);
  Case c{{3, 8, 8, 16}, {8, 4, 3, 3}, {.padding = {1, 1}}, true};
  Tensor x = randn(c.x, gen, DType::f64), w = randn(c.w, gen, DType::f64);
  Tensor b = randn({4}, gen, DType::f64);
  Tensor gy = randn({3, 4, 8, 16}, gen, DType::f64);
  auto want = run(c, true, {x, w, b}, gy, DType::f64);
  auto got = run(c, true, {x, w, b}, gy, DType::f32);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_LT(rel_diff(got[i], want[i]), 2e-5) << i;
}

TEST(ConvDirect, UnsupportedGeometriesStayOnIm2col) {
  cpu::ConvGeometry g;
  g.batch = 2;
  g.in_channels = g.out_channels = 4;
  g.in_h = g.in_w = g.out_h = g.out_w = 16;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  EXPECT_EQ(cpu::direct_conv_supported(g), cpu::direct_conv_built());
  cpu::ConvGeometry strided = g;
  strided.stride_h = strided.stride_w = 2;
  strided.out_h = strided.out_w = 8;
  EXPECT_FALSE(cpu::direct_conv_supported(strided));
  cpu::ConvGeometry narrow = g;
  narrow.in_w = narrow.out_w = 12;
  EXPECT_FALSE(cpu::direct_conv_supported(narrow));
  cpu::ConvGeometry pointwise = g;
  pointwise.kernel_h = pointwise.kernel_w = 1;
  pointwise.pad_h = pointwise.pad_w = 0;
  EXPECT_FALSE(cpu::direct_conv_supported(pointwise));
  cpu::ConvGeometry grouped = g;
  grouped.groups = 2;
  EXPECT_FALSE(cpu::direct_conv_supported(grouped));
}

}  // namespace
}  // namespace strata
