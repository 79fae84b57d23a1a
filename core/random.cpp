// Philox4x32-10 (Salmon et al., SC'11) and the CPU samplers built on it.
#include "core/random.h"

#include <cmath>
#include <numbers>

#include "core/backend/cpu/loops.h"

namespace strata {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kKey0 = 0x9E3779B9u, kKey1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

/// Fills out[i] = f(lane values) for n elements starting at counter `base`.
template <class F>
void for_each_block(uint64_t seed, uint64_t base, int64_t n, F f) {
  int64_t blocks = (n + 3) / 4;
#pragma omp parallel for if (n >= cpu::kParallelGrain) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    auto r = philox4x32(seed, base + static_cast<uint64_t>(b));
    f(b, r);
  }
}

}  // namespace

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t counter, uint64_t stream) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c0, hi0, lo0);
    mulhilo(kMul1, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kKey0;
    k1 += kKey1;
  }
  return {c0, c1, c2, c3};
}

void Generator::set_replica(int64_t index, int64_t count) {
  check(count >= 1 && index >= 0 && index < count, "[random] replica ", index, " of ", count,
        " is not a replica; give 0 <= index < count");
  replica_index_ = static_cast<uint64_t>(index);
  replica_count_ = static_cast<uint64_t>(count);
}

double Generator::uniform() {
  auto r = philox4x32(state_.seed, reserve(1));
  uint64_t bits = (static_cast<uint64_t>(r[0]) << 21) ^ (r[1] >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * 0x1.0p-53;
}

int64_t Generator::randint(int64_t n) {
  check(n > 0, "[random] randint upper bound must be positive, got ", n);
  return std::min<int64_t>(static_cast<int64_t>(uniform() * static_cast<double>(n)), n - 1);
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype, double lo, double hi) {
  Tensor t = empty(shape, DType::f32);
  float* p = t.data<float>();
  int64_t n = t.numel();
  auto flo = static_cast<float>(lo), span = static_cast<float>(hi - lo);
  for_each_block(gen.seed(), gen.reserve_values(n), n, [&](int64_t b, const auto& r) {
    for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j)
      p[b * 4 + j] = flo + span * uniform_float(r[j]);
  });
  return t.to(dtype);
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, double mean, double std) {
  Tensor t = empty(shape, DType::f32);
  float* p = t.data<float>();
  int64_t n = t.numel();
  auto m = static_cast<float>(mean), s = static_cast<float>(std);
  for_each_block(gen.seed(), gen.reserve_values(n), n, [&](int64_t b, const auto& r) {
    for (int j = 0; j < 4; j += 2) {
      // Box-Muller; 1 - u keeps the log argument in (0, 1].
      float u1 = 1.0f - uniform_float(r[j]), u2 = uniform_float(r[j + 1]);
      float rad = std::sqrt(-2.0f * std::log(u1));
      float th = 2.0f * std::numbers::pi_v<float> * u2;
      if (b * 4 + j < n) p[b * 4 + j] = m + s * rad * std::cos(th);
      if (b * 4 + j + 1 < n) p[b * 4 + j + 1] = m + s * rad * std::sin(th);
    }
  });
  return t.to(dtype);
}

Tensor trunc_normal(const Shape& shape, Generator& gen, double mean, double std, double a, double b,
                    DType dtype) {
  check(std > 0 && a < b, "[trunc_normal] needs std > 0 and a < b, got std=", std, " a=", a,
        " b=", b);
  auto cdf = [](double x) { return 0.5 * (1 + std::erf(x / std::numbers::sqrt2)); };
  double lo = cdf((a - mean) / std), hi = cdf((b - mean) / std);
  Tensor u = rand(shape, gen, DType::f64, 2 * lo - 1, 2 * hi - 1);
  double* p = u.data<double>();
  for (int64_t i = 0; i < u.numel(); ++i) {
    // erfinv by Newton on erf, from a rough start; converges in a few steps for |y| < 1.
    double y = std::clamp(p[i], -1 + 1e-12, 1 - 1e-12), x = 0;
    for (int it = 0; it < 60; ++it) {
      double err = std::erf(x) - y;
      if (std::abs(err) < 1e-15) break;
      x -= err / (2 / std::sqrt(std::numbers::pi) * std::exp(-x * x));
    }
    p[i] = std::clamp(mean + std * std::numbers::sqrt2 * x, a, b);
  }
  return u.to(dtype);
}

Tensor randint(int64_t lo, int64_t hi, const Shape& shape, Generator& gen) {
  check(hi > lo, "[randint] empty range [", lo, ", ", hi, ")");
  Tensor t = empty(shape, DType::i64);
  int64_t* p = t.data<int64_t>();
  int64_t n = t.numel();
  auto span = static_cast<uint64_t>(hi - lo);
  for_each_block(gen.seed(), gen.reserve_values(n), n, [&](int64_t b, const auto& r) {
    for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j) {
      p[b * 4 + j] = lo + static_cast<int64_t>((static_cast<uint64_t>(r[j]) * span) >> 32);
    }
  });
  return t;
}

Tensor randperm(int64_t n, Generator& gen) {
  Tensor t = arange(0, static_cast<double>(n));
  int64_t* p = t.data<int64_t>();
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[gen.randint(i + 1)]);
  return t;
}

Tensor bernoulli(const Shape& shape, double prob, Generator& gen) {
  check(prob >= 0 && prob <= 1, "[bernoulli] probability must be in [0, 1], got ", prob);
  Tensor t = empty(shape, DType::b8);
  bool* p = t.data<bool>();
  int64_t n = t.numel();
  auto pf = static_cast<float>(prob);
  for_each_block(gen.seed(), gen.reserve_values(n), n, [&](int64_t b, const auto& r) {
    for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j) p[b * 4 + j] = uniform_float(r[j]) < pf;
  });
  return t;
}

}  // namespace strata
