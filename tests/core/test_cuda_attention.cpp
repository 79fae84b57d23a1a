// The fused CUDA attention (backend/cuda/attention.cu) against the CPU's composed attention:
// forward output and the gradients of q, k and v, for several shapes, causal and not, with
// padding masks and a fully masked row, in f32 (CUDA-core kernels), bf16 and f16 (tensor-core
// kernels, attention_mma.cu). Skips without a GPU, saying why.
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
      // The bf16/f16 tensor-core kernels tile 64 x 64: tails of 1, 63 and 2 rows, Tq < Tk
      // causal (key blocks no query reaches), Tq > Tk, D of 16, 40, 80 and 128 (zero padded to
      // 32, 64, 128) and 36 (not a whole 16-byte load: the element-wise loader).
      {"b2h2_t65_d16", 2, 2, 65, 65, 16, false, 0},
      {"b2h2_t65_d16_causal", 2, 2, 65, 65, 16, true, 0},
      {"b1h3_t127_d40_causal", 1, 3, 127, 127, 40, true, 0},
      {"b2h1_tq65_tk130_d80_causal", 2, 1, 65, 130, 80, true, 0},
      {"b1h2_tq20_tk130_d64_causal", 1, 2, 20, 130, 64, true, 0},
      {"b2h2_tq127_tk65_d64_causal", 2, 2, 127, 65, 64, true, 0},
      {"b1h2_tq130_tk127_d128_padmask", 1, 2, 130, 127, 128, false, 1},
      {"b2h2_tq130_tk130_d128_causal", 2, 2, 130, 130, 128, true, 0},
      {"b1h2_tq70_tk130_d40_maskrow", 1, 2, 70, 130, 40, false, 2},
      {"b2h1_t65_d36_causal_maskrow", 2, 1, 65, 65, 36, true, 2},
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
  // Contiguous views whose data starts one element past an allocation: D = 64 would take the
  // 16-byte loader but the address is not 16-byte aligned, so the element-wise loader runs.
  for (DType t : {DType::f32, DType::bf16}) {
    cases.push_back({str_cat("sdpa_unaligned_base_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       const int64_t n = 2 * 2 * 40 * 64;
                       auto view = [&](uint64_t seed) {
                         Tensor flat = input(d, t, {n + 1}, seed);
                         return std::pair{flat, flat.slice(0, 1, n + 1).reshape({2, 2, 40, 64})};
                       };
                       auto [fq, q] = view(77);
                       auto [fk, k] = view(78);
                       auto [fv, v] = view(79);
                       Tensor y = scaled_dot_product_attention(q, k, v, {}, true);
                       return with_grads(y, {fq, fk, fv});
                     },
                     t == DType::f32 ? 8.0 : 2.0});
  }
  // GPT's packed projection (B, T, 3C): one node on CUDA, three slices on the CPU.
  for (DType t : {DType::f32, DType::bf16}) {
    cases.push_back({str_cat("packed_self_attention_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor qkv = input(d, t, {2, 70, 3 * 96}, 83);
                       return with_grads(packed_self_attention(qkv, 3, true), {qkv});
                     },
                     t == DType::f32 ? 8.0 : 2.0});
  }
  // No queries: an empty output and zero gradients for k and v.
  cases.push_back({"sdpa_no_queries_f32", DType::f32,
                   [](Device d, DType t) {
                     Tensor q = input(d, t, {1, 2, 0, 32}, 80), k = input(d, t, {1, 2, 9, 32}, 81);
                     Tensor v = input(d, t, {1, 2, 9, 32}, 82);
                     Tensor y = scaled_dot_product_attention(q, k, v, {}, false);
                     return with_grads(y, {q, k, v});
                   },
                   1});
  return cases;
}

class CudaAttention : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaAttention, MatchesCpu) { expect_cuda_matches_cpu(GetParam()); }
TEST_P(CudaAttention, CpuReferenceIsFinite) { expect_cpu_reference_finite(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Sdpa, CudaAttention, ::testing::ValuesIn(attention_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// A fully masked query row outputs 0 and passes no gradient, on both devices, in f32 (the
// CUDA-core kernels) and bf16/f16 (the tensor-core kernels, whose tiles span 64 rows).
TEST(CudaAttentionRules, FullyMaskedRowIsZero) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  for (DType t : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(t));
    for (int64_t T : {24, 70}) {
      const AttnShape s{"row", 1, 2, T, T, 96, true, 2};
      Device d = Device::cuda(0);
      Tensor q = input(d, t, {1, 2, T, 96}, 71), k = input(d, t, {1, 2, T, 96}, 72);
      Tensor v = input(d, t, {1, 2, T, 96}, 73);
      Outs out =
          with_grads(scaled_dot_product_attention(q, k, v, make_mask(d, s), true), {q, k, v});
      Tensor row = out[0].slice(2, 3, 4).to(Device::cpu());
      Tensor grow = out[1].slice(2, 3, 4).to(Device::cpu());
      for (double x : row.to_vector<double>()) ASSERT_EQ(x, 0.0);
      for (double x : grow.to_vector<double>()) ASSERT_EQ(x, 0.0);
      EXPECT_GT(sum(abs(out[0].to(DType::f32))).item(), 1.0);  // the other rows are not zero
    }
  }
}

// Keys that no query reaches (causal, Tq < Tk: keys past the last query) get exactly zero dK
// and dV, also where a whole 64-key block of the tensor-core kernels has no query.
TEST(CudaAttentionRules, UnreachedKeysHaveZeroGradient) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  for (DType t : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(t));
    Device d = Device::cuda(0);
    Tensor q = input(d, t, {1, 2, 20, 40}, 71), k = input(d, t, {1, 2, 150, 40}, 72);
    Tensor v = input(d, t, {1, 2, 150, 40}, 73);
    Outs out = with_grads(scaled_dot_product_attention(q, k, v, {}, true), {q, k, v});
    for (int g : {2, 3}) {
      for (double x : out[g].slice(2, 20, 150).to(Device::cpu()).to_vector<double>()) {
        ASSERT_EQ(x, 0.0) << "gradient " << g;
      }
      EXPECT_GT(sum(abs(out[g].slice(2, 0, 20).to(DType::f32))).item(), 0.1) << "gradient " << g;
    }
  }
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
