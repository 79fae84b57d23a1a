// Convolution and pooling values against PyTorch 1.13 literals, the fast (im2col, batch-
// parallel) path against a plain loop, and the error messages for bad shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "core/ops.h"
#include "core/ops/conv.h"
#include "core/ops/pool.h"

namespace strata {
namespace {

// Inputs shared with the PyTorch script that produced the literals below:
//   def pat(shape, seed): v[i] = ((i * 37 + seed * 11) % 101) / 50 - 1, reshaped, float64
Tensor pat(const Shape& shape, int64_t seed, DType dtype = DType::f64) {
  std::vector<double> v(numel_of(shape));
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<double>((static_cast<int64_t>(i) * 37 + seed * 11) % 101) / 50.0 - 1.0;
  }
  return from_vector<double>(v, shape).to(dtype);
}

void expect_near(const Tensor& t, const std::vector<double>& want, double tol = 1e-9) {
  std::vector<double> got = t.to_vector<double>();
  ASSERT_GE(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

/// The plain 7-loop conv2d, in f64, that the fast path is checked against.
std::vector<double> reference_conv2d(const Tensor& x, const Tensor& w, const Tensor& b,
                                     const Conv2dParams& p, const Shape& out) {
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>();
  std::vector<double> bv = b.defined() ? b.to_vector<double>() : std::vector<double>();
  int64_t C = x.size(1), H = x.size(2), W = x.size(3), kh = w.size(2), kw = w.size(3);
  int64_t cig = w.size(1), cog = out[1] / p.groups;
  std::vector<double> y(numel_of(out));
  for (int64_t n = 0; n < out[0]; ++n)
    for (int64_t co = 0; co < out[1]; ++co)
      for (int64_t oh = 0; oh < out[2]; ++oh)
        for (int64_t ow = 0; ow < out[3]; ++ow) {
          double s = bv.empty() ? 0 : bv[co];
          for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t ih = oh * p.stride[0] - p.padding[0] + i * p.dilation[0];
                int64_t iw = ow * p.stride[1] - p.padding[1] + j * p.dilation[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                int64_t c = co / cog * cig + ci;
                s += xv[((n * C + c) * H + ih) * W + iw] * wv[((co * cig + ci) * kh + i) * kw + j];
              }
          y[((n * out[1] + co) * out[2] + oh) * out[3] + ow] = s;
        }
  return y;
}

TEST(Conv, Conv2dStridePaddingBiasMatchesTorch) {
  // F.conv2d(pat((2,3,5,5),1), pat((4,3,3,3),2), pat((4,),3), stride=2, padding=1), then
  // (y * pat(y.shape, 4)).sum().backward().
  Tensor x = pat({2, 3, 5, 5}, 1), w = pat({4, 3, 3, 3}, 2), b = pat({4}, 3);
  x.set_requires_grad();
  w.set_requires_grad();
  b.set_requires_grad();
  Tensor y = conv2d(x, w, b, {.stride = {2, 2}, .padding = {1, 1}});
  EXPECT_EQ(y.shape(), (Shape{2, 4, 3, 3}));
  expect_near(y, {0.817600, 0.190000, -0.138800, 0.051200, -2.202000, -0.505200, -0.364800,
                  -2.705200, -1.227600, 0.102800, 1.846400, 0.476800});
  expect_near(y.slice(0, 1, 2), {-2.112800, -1.105200, -1.090000, -0.780000, -0.798000, 1.107200});
  sum(mul(y, pat(y.shape(), 4))).backward();
  expect_near(x.grad(),
              {0.182800, 0.545200, 0.007600, -2.269600, -0.046400, 0.245600, -0.765600, -0.104800});
  expect_near(w.grad(),
              {-1.451200, 0.554000, -0.371200, -0.426800, 0.345200, 1.597200, 1.667600, -1.494400});
  expect_near(b.grad(), {0.0, 0.7, -0.62, 0.08});
}

TEST(Conv, Conv2dGroupsDilationMatchesTorch) {
  // F.conv2d(pat((1,4,6,6),5), pat((6,2,3,3),6), padding=2, dilation=2, groups=2)
  Tensor y = conv2d(pat({1, 4, 6, 6}, 5), pat({6, 2, 3, 3}, 6), {},
                    {.padding = {2, 2}, .dilation = {2, 2}, .groups = 2});
  EXPECT_EQ(y.shape(), (Shape{1, 6, 6, 6}));
  expect_near(y, {-0.070400, -0.496000, 0.753200, 1.960000, 0.516000, -0.856400, -0.482800,
                  -0.100400, -0.894000, -0.454800, 1.210000, 0.160800});
  EXPECT_NEAR(sum(y).item(), 4.52, 1e-9);
}

TEST(Conv, ConvTranspose2dMatchesTorch) {
  // F.conv_transpose2d(pat((1,4,3,3),7), pat((4,3,3,3),8), pat((6,),9), stride=2, padding=1,
  //                    output_padding=1, groups=2)
  Tensor y = conv_transpose2d(
      pat({1, 4, 3, 3}, 7), pat({4, 3, 3, 3}, 8), pat({6}, 9),
      {.stride = {2, 2}, .padding = {1, 1}, .groups = 2, .output_padding = {1, 1}});
  EXPECT_EQ(y.shape(), (Shape{1, 6, 6, 6}));
  expect_near(y, {1.282400, 0.216800, 1.292400, 1.085200, 0.656000, 1.100000, 1.332800, 1.252400,
                  1.352800, 1.494400, 0.080000, 1.264000});
  EXPECT_NEAR(sum(y).item(), 31.2276, 1e-9);
}

TEST(Conv, PointwiseConvMatchesTorch) {
  // F.conv2d(pat((2,3,2,2),10), pat((5,3,1,1),11), pat((5,),12)): the path without im2col.
  Tensor y = conv2d(pat({2, 3, 2, 2}, 10), pat({5, 3, 1, 1}, 11), pat({5}, 12));
  expect_near(
      y, {-0.716000, -0.405200, -0.377200, -0.632000, 1.631200,  0.891200,  -0.535600, 1.431200,
          0.019200,  -0.276800, -1.663600, -0.060800, 0.427200,  0.575200,  -0.771600, 0.467200,
          0.835200,  1.427200,  0.120400,  0.995200,  -0.380000, -0.352000, -0.606800, -0.578800,
          0.831200,  -0.595600, 1.371200,  -0.055600, -0.300800, -1.687600, -0.084800, -1.471600,
          0.587200,  -0.759600, 0.479200,  -0.867600, 1.475200,  0.168400,  1.043200,  -0.263600});
}

TEST(Conv, BatchParallelPathMatchesPlainLoop) {
  // A batch large enough to split across threads, with every geometry feature at once.
  Generator gen(3);
  Conv2dParams p{.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2};
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = randn({8, 4, 11, 9}, gen, dt), w = randn({6, 2, 3, 3}, gen, dt);
    Tensor b = randn({6}, gen, dt);
    Tensor y = conv2d(x, w, b, p);
    std::vector<double> want = reference_conv2d(x, w, b, p, y.shape());
    expect_near(y, want, dt == DType::f64 ? 1e-12 : 1e-4);
    // One sample at a time takes the sequential path: the same numbers.
    Tensor y1 = conv2d(x.slice(0, 4, 5), w, b, p);
    expect_near(y1,
                std::vector<double>(want.begin() + 4 * y1.numel(), want.begin() + 5 * y1.numel()),
                dt == DType::f64 ? 1e-12 : 1e-4);
  }
}

TEST(Conv, ChunkedColumnsMatchPlainLoop) {
  // Outputs wide enough to be split into row chunks (im2col and pointwise paths).
  Generator gen(5);
  Conv2dParams p{.padding = {1, 1}, .groups = 2};
  Tensor x = randn({2, 16, 20, 20}, gen, DType::f64), w = randn({4, 8, 3, 3}, gen, DType::f64);
  Tensor y = conv2d(x, w, {}, p);
  expect_near(y, reference_conv2d(x, w, {}, p, y.shape()), 1e-12);
  Tensor xp = randn({2, 16, 50, 50}, gen, DType::f64), wp = randn({3, 16, 1, 1}, gen, DType::f64);
  Tensor yp = conv2d(xp, wp, {});
  expect_near(yp, reference_conv2d(xp, wp, {}, {}, yp.shape()), 1e-12);
}

TEST(Conv, BackwardIsTheAdjointOnLargeInputs) {
  // <conv2d(x, w), gy> = <x, dx> = <w, dw>: checks the chunked, batch-parallel backward
  // kernels at sizes that finite differences cannot afford.
  Generator gen(9);
  for (auto [shape, wshape, p] :
       {std::tuple{Shape{8, 16, 20, 20}, Shape{8, 8, 3, 3},
                   Conv2dParams{.padding = {1, 1}, .groups = 2}},
        std::tuple{Shape{8, 16, 50, 50}, Shape{4, 16, 1, 1}, Conv2dParams{}},
        std::tuple{Shape{8, 4, 21, 17}, Shape{6, 4, 3, 2},
                   Conv2dParams{.stride = {2, 3}, .padding = {1, 1}, .dilation = {2, 1}}}}) {
    Tensor x = randn(shape, gen, DType::f64), w = randn(wshape, gen, DType::f64);
    x.set_requires_grad();
    w.set_requires_grad();
    Tensor y = conv2d(x, w, {}, p);
    Tensor gy = randn(y.shape(), gen, DType::f64);
    y.backward(gy);
    double lhs = sum(mul(y, gy)).item();
    EXPECT_NEAR(sum(mul(x, x.grad())).item(), lhs, 1e-8 * std::abs(lhs));
    EXPECT_NEAR(sum(mul(w, w.grad())).item(), lhs, 1e-8 * std::abs(lhs));
  }
}

TEST(Conv, HalfPrecisionComputesInF32) {
  Tensor x = pat({2, 3, 5, 5}, 1), w = pat({4, 3, 3, 3}, 2);
  Tensor want = conv2d(x, w, {});
  Tensor got = conv2d(x.to(DType::bf16), w.to(DType::bf16), {});
  EXPECT_EQ(got.dtype(), DType::bf16);
  expect_near(got, want.to_vector<double>(), 0.1);
}

TEST(Conv, BadShapesNameTheProblem) {
  Tensor x = zeros({1, 3, 5, 5}), w = zeros({4, 2, 3, 3});
  EXPECT_EQ(error_of([&] { conv2d(x, w, {}); }),
            "[conv2d] input f32[1, 3, 5, 5] cpu has 3 channels but weight f32[4, 2, 3, 3] cpu "
            "expects 2 (weight.size(1)=2 x groups=1)");
  EXPECT_EQ(error_of([&] {
              conv2d(zeros({1, 1, 2, 2}), zeros({1, 1, 3, 3}), {});
            }),
            "[conv2d] kernel (3, 3) with dilation (1, 1) spans 3 but the padded input "
            "f32[1, 1, 2, 2] cpu with padding (0, 0) is only 2 along dim 2; use a smaller "
            "kernel or more padding");
  EXPECT_EQ(error_of([&] {
              conv2d(zeros({1, 4, 5, 5}), zeros({6, 1, 3, 3}), {}, {.groups = 3});
            }),
            "[conv2d] groups=3 must divide both in_channels=4 and out_channels=6");
  EXPECT_EQ(error_of([&] {
              conv2d(zeros({3, 5, 5}), w, {});
            }),
            "[conv2d] expected input (N, C, H, W) with 4 dimensions, got f32[3, 5, 5] cpu");
  EXPECT_EQ(error_of([&] {
              conv2d(zeros({1, 2, 5, 5}), w, zeros({3}));
            }),
            "[conv2d] bias f32[3] cpu should be (C_out=4)");
  EXPECT_EQ(error_of([&] {
              conv2d(x, zeros({4, 3, 3, 3}), {}, {.stride = {0, 1}});
            }),
            "[conv2d] stride (0, 1) must be >= 1");
  EXPECT_EQ(error_of([&] {
              conv_transpose2d(x, zeros({4, 2, 3, 3}), {});
            }),
            "[conv_transpose2d] input f32[1, 3, 5, 5] cpu has 3 channels but weight "
            "f32[4, 2, 3, 3] cpu expects 4 (weight is (C_in, C_out / groups, kH, kW))");
  EXPECT_EQ(
      error_of([&] {
        conv_transpose2d(x, zeros({3, 2, 3, 3}), {}, {.stride = {2, 2}, .output_padding = {2, 0}});
      }),
      "[conv_transpose2d] output_padding (2, 0) must be >= 0 and smaller than either "
      "stride (2, 2) or dilation (1, 1)");
}

TEST(Pool, MaxAvgAdaptiveMatchTorch) {
  // F.max_pool2d / F.avg_pool2d(pat((1,2,5,5),13), 3, 2, 1); adaptive (3, 2) of pat((1,2,5,7),14)
  Tensor x = pat({1, 2, 5, 5}, 13);
  expect_near(max_pool2d(x, {3, 3}, {2, 2}, {1, 1}),
              {0.58, 0.98, 0.78, 0.84, 0.98, 0.44, 0.84, 0.70, 0.70, 0.90, 0.90, 0.76, 0.56, 0.96,
               0.76, 0.82, 0.62, 0.08});
  expect_near(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}),
              {0.017778, 0.093333, 0.106667, -0.088889, -0.033333, -0.180000, 0.013333, -0.137778,
               -0.122222, 0.160000, 0.082222, 0.024444, -0.100000, 0.062222, 0.033333, -0.068889,
               -0.148889, -0.204444},
              1e-6);
  Tensor a = adaptive_avg_pool2d(pat({1, 2, 5, 7}, 14), {3, 2});
  EXPECT_EQ(a.shape(), (Shape{1, 2, 3, 2}));
  expect_near(a,
              {-0.027500, 0.172500, -0.085000, -0.053333, 0.110000, 0.057500, -0.135000, -0.187500,
               -0.108333, -0.076667, 0.002500, -0.050000},
              1e-6);
}

TEST(Pool, MaxPoolGradientGoesToTheArgmax) {
  // torch's indices for the case above: [1, 7, 4, 15, 7, 9, 15, 23, 23] in plane 0; the
  // gradient of sum(y) counts how often each input was a window's maximum.
  Tensor x = pat({1, 2, 5, 5}, 13);
  x.set_requires_grad();
  sum(max_pool2d(x, {3, 3}, {2, 2}, {1, 1})).backward();
  std::vector<double> g = x.grad().to_vector<double>();
  std::vector<double> want(25, 0.0);
  for (int64_t i : {1, 7, 4, 15, 7, 9, 15, 23, 23}) want[i] += 1;
  EXPECT_EQ(std::vector<double>(g.begin(), g.begin() + 25), want);
}

TEST(Pool, BadWindowsNameTheProblem) {
  Tensor x = zeros({1, 1, 4, 4});
  EXPECT_EQ(error_of([&] {
              max_pool2d(x, {2, 2}, {2, 2}, {2, 0});
            }),
            "[max_pool2d] padding (2, 0) should be at most half of kernel (2, 2)");
  EXPECT_EQ(error_of([&] {
              avg_pool2d(x, {5, 5}, {1, 1});
            }),
            "[avg_pool2d] kernel (5, 5) is larger than the padded input f32[1, 1, 4, 4] cpu "
            "with padding (0, 0); use a smaller kernel or more padding");
  EXPECT_EQ(error_of([&] {
              adaptive_avg_pool2d(zeros({4, 4}), {1, 1});
            }),
            "[adaptive_avg_pool2d] expected input (N, C, H, W) with 4 dimensions, got "
            "f32[4, 4] cpu");
}

}  // namespace
}  // namespace strata
