// Vectorisable exp, tanh and sigmoid for the softmax, loss, normalisation and activation
// loops: std::exp and std::tanh do not vectorise without -ffast-math, and these loops are
// exp-bound.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace strata::cpu {

/// cond (0 or 1) ? a : b as bit operations: float compares and ternaries may trap, which
/// stops GCC from if-converting (and so vectorising) the loop.
inline int32_t blend_bits(int32_t cond, int32_t a, int32_t b) {
  int32_t m = -cond;
  return (a & m) | (b & ~m);
}

/// exp(x) for f32 within 1e-7 relative (Cephes polynomial, Cody-Waite reduction, the scale
/// 2^n applied in two halves so results underflow gradually to 0). exp(-inf) = 0,
/// exp(x > 88.7) = inf, NaN stays NaN.
inline float exp_approx(float x) {
  int32_t xi = std::bit_cast<int32_t>(x);
  int32_t mag = xi & 0x7fffffff;
  int32_t neg = static_cast<int32_t>(static_cast<uint32_t>(xi) >> 31);
  // Clamp to [-104, 89] (0x42d00000 = 104.0f, 0x42b20000 = 89.0f) on the bits.
  int32_t ci = blend_bits(neg & (mag > 0x42d00000), static_cast<int32_t>(0xc2d00000u), xi);
  ci = blend_bits((neg ^ 1) & (mag > 0x42b20000), 0x42b20000, ci);
  float xc = std::bit_cast<float>(ci);
  // Round x/ln2 to nearest with the 1.5 * 2^23 shifter; its low bits then hold n.
  const float shifter = 12582912.0f;
  float ns = xc * 1.44269504088896341f + shifter;
  float n = ns - shifter;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t ni = std::bit_cast<int32_t>(ns) - std::bit_cast<int32_t>(shifter);
  int32_t n1 = ni >> 1, n2 = ni - n1;
  float y = p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
  return std::bit_cast<float>(blend_bits(mag > 0x7f800000, xi, std::bit_cast<int32_t>(y)));
}

/// tanh(x) for f32 within a few ulp (Cephes tanhf): an odd polynomial below |x| = 0.625,
/// where 1 - 2 / (e^2|x| + 1) would cancel, and that formula above it; both are computed and
/// blended on the bits so that loops vectorise. tanh(+-inf) = +-1, NaN stays NaN.
inline float tanh_approx(float x) {
  int32_t xi = std::bit_cast<int32_t>(x);
  int32_t mag = xi & 0x7fffffff;
  float ax = std::bit_cast<float>(mag);
  float s = ax * ax;
  float small = ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s +
                  1.33314422036e-1f) *
                     s -
                 3.33332819422e-1f) *
                    s * ax +
                ax;
  float big = 1.0f - 2.0f / (exp_approx(ax + ax) + 1.0f);
  // 0x3f200000 = 0.625f; the sign goes back on last so that tanh(-0) = -0.
  int32_t t =
      blend_bits(mag < 0x3f200000, std::bit_cast<int32_t>(small), std::bit_cast<int32_t>(big));
  return std::bit_cast<float>(t | (xi & static_cast<int32_t>(0x80000000u)));
}

/// exp for the kernels' element types: f64 keeps std::exp (gradchecks need full precision).
inline float fast_exp(float x) { return exp_approx(x); }
inline double fast_exp(double x) { return std::exp(x); }

/// tanh, vectorisable for f32; f64 keeps std::tanh.
inline float fast_tanh(float x) { return tanh_approx(x); }
inline double fast_tanh(double x) { return std::tanh(x); }

/// 1 / (1 + e^-x): 0 for x -> -inf and 1 for x -> inf, without overflow traps.
inline float fast_sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
inline double fast_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace strata::cpu
