// A vectorisable exp for the softmax, loss and normalisation loops: std::exp does not
// vectorise without -ffast-math, and these loops are exp-bound.
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

/// exp for the kernels' element types: f64 keeps std::exp (gradchecks need full precision).
inline float fast_exp(float x) { return exp_approx(x); }
inline double fast_exp(double x) { return std::exp(x); }

}  // namespace strata::cpu
