// The fused CUDA attention (backend/cuda/attention.cu) against the CPU's composed attention:
// forward output and the gradients of q, k and v, for several shapes, causal and not, with
// padding masks and a fully masked row, in f32, bf16 and f16. Skips without a GPU, saying why.
#include <gtest/gtest.h>

#include "tests/core/cuda_case.h"

namespace strata {
namespace {

using namespace cuda_case;

struct AttnShape {
  const char* name;
  int64_t B, H, Tq, Tk, D;
  bool causal;
  int mask;  // 0: none, 1: padding mask (B, 1, 1, Tk), 2: (Tq, Tk) with a fully masked row
};

/// A bool mask built on the CPU from a fixed pattern, then moved to `d`.
Tensor make_mask(Device d, const AttnShape& s) {
  std::vector<double> v;
  Shape shape;
  if (s.mask == 1) {
    shape = {s.B, 1, 1, s.Tk};
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t j = 0; j < s.Tk; ++j) v.push_back(j < s.Tk - 5 * (b + 1) ? 1 : 0);
    }
  } else {
    shape = {s.Tq, s.Tk};
    for (int64_t i = 0; i < s.Tq; ++i) {
      for (int64_t j = 0; j < s.Tk; ++j) v.push_back(i != 3 && (i * 7 + j * 3) % 5 != 0 ? 1 : 0);
    }
  }
  Tensor t = from_vector<double>(v, shape);
  return ne(t, zeros(shape, DType::f64)).to(d);
}

std::vector<OpCase> attention_cases() {
  const AttnShape shapes[] = {
      {"b2h3_t37_d64", 2, 3, 37, 37, 64, false, 0},
      {"b1h2_t70_d64_causal", 1, 2, 70, 70, 64, true, 0},
      {"b2h2_t33_d128_causal", 2, 2, 33, 33, 128, true, 0},
      {"b1h2_t300_d64_causal", 1, 2, 300, 300, 64, true, 0},
      {"b1h1_tq20_tk45_d40_causal", 1, 1, 20, 45, 40, true, 0},
      {"b2h2_tq17_tk50_d32_padmask", 2, 2, 17, 50, 32, false, 1},
      {"b1h2_t24_d96_maskrow", 1, 2, 24, 24, 96, true, 2},
  };
  std::vector<OpCase> cases;
  for (DType t : {DType::f32, DType::bf16, DType::f16}) {
    // f32 sums 64-128 products and an online softmax; the half types round every output.
    const double scale = t == DType::f32 ? 8 : 2;
    for (const AttnShape& s : shapes) {
      cases.push_back({str_cat("sdpa_", s.name, "_", dtype_name(t)), t,
                       [s](Device d, DType t) {
                         Tensor q = input(d, t, {s.B, s.H, s.Tq, s.D}, 71);
                         Tensor k = input(d, t, {s.B, s.H, s.Tk, s.D}, 72);
                         Tensor v = input(d, t, {s.B, s.H, s.Tk, s.D}, 73);
                         Tensor m = s.mask ? make_mask(d, s) : Tensor();
                         Tensor y = scaled_dot_product_attention(q, k, v, m, s.causal);
                         return with_grads(y, {q, k, v});
                       },
                       scale});
    }
  }
  // A transposed (B, T, H, D) -> (B, H, T, D) view, as GPT's attention passes it, and a scale.
  cases.push_back(
      {"sdpa_strided_view_scale_f32", DType::f32,
       [](Device d, DType t) {
         Tensor q = input(d, t, {2, 29, 3, 64}, 74), k = input(d, t, {2, 29, 3, 64}, 75);
         Tensor v = input(d, t, {2, 29, 3, 64}, 76);
         Tensor y = scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                 v.transpose(1, 2), {}, true, 0.3);
         return with_grads(y, {q, k, v});
       },
       8});
  return cases;
}

class CudaAttention : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaAttention, MatchesCpu) { expect_cuda_matches_cpu(GetParam()); }
TEST_P(CudaAttention, CpuReferenceIsFinite) { expect_cpu_reference_finite(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Sdpa, CudaAttention, ::testing::ValuesIn(attention_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// A fully masked query row outputs 0 and passes no gradient, on both devices.
TEST(CudaAttentionRules, FullyMaskedRowIsZero) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  const AttnShape s{"row", 1, 2, 24, 24, 96, true, 2};
  Device d = Device::cuda(0);
  Tensor q = input(d, DType::f32, {1, 2, 24, 96}, 71), k = input(d, DType::f32, {1, 2, 24, 96}, 72);
  Tensor v = input(d, DType::f32, {1, 2, 24, 96}, 73);
  Outs out = with_grads(scaled_dot_product_attention(q, k, v, make_mask(d, s), true), {q, k, v});
  Tensor row = out[0].slice(2, 3, 4).to(Device::cpu());
  Tensor grow = out[1].slice(2, 3, 4).to(Device::cpu());
  for (double x : row.to_vector<double>()) ASSERT_EQ(x, 0.0);
  for (double x : grow.to_vector<double>()) ASSERT_EQ(x, 0.0);
  EXPECT_GT(sum(abs(out[0])).item(), 1.0);  // the other rows are not zero
}

// What the kernel does not take is refused with the reason and what to do.
TEST(CudaAttentionRules, UnsupportedInputsAreRefused) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  Device d = Device::cuda(0);
  Tensor q64 = ones({1, 1, 4, 8}, DType::f64, d);
  std::string msg =
      testing::message_of([&] { scaled_dot_product_attention(q64, q64, q64, {}, false); });
  EXPECT_EQ(msg.rfind("[scaled_dot_product_attention] has no f64 CUDA kernel", 0), 0u) << msg;
  EXPECT_NE(msg.find("device: cpu"), std::string::npos) << msg;
  Tensor big = ones({1, 1, 4, 160}, DType::f32, d);
  msg = testing::message_of([&] { scaled_dot_product_attention(big, big, big); });
  EXPECT_EQ(msg.rfind("[scaled_dot_product_attention] the CUDA kernel needs head dims D == Dv <= "
                      "128; got q f32[1, 1, 4, 160] cuda:0",
                      0),
            0u)
      << msg;
  Tensor q = ones({1, 1, 4, 8}, DType::f32, d), v = ones({1, 1, 4, 16}, DType::f32, d);
  msg = testing::message_of([&] { scaled_dot_product_attention(q, q, v); });
  EXPECT_NE(msg.find("needs head dims D == Dv"), std::string::npos) << msg;
}

}  // namespace
}  // namespace strata
