// nn layers over the functional ops: MultiheadAttention, normalisation, convolution,
// Embedding and Dropout, against PyTorch 1.13 values.
//
// Weights and inputs are closed-form so that torch and this file build them identically:
//   sinw(shape, scale, phase)[i] = float(sin(i + phase) * scale)
//   cosx(shape, k)[i]            = float(cos(i * k))
// The expected values were printed by this script (torch 1.13, /usr/bin/python3), e.g.
//   mha = nn.MultiheadAttention(4, 2, batch_first=True); in_proj_weight = sinw((12, 4)),
//   in_proj_bias = sinw((12,), 0.1, 1.0); out_proj.weight = sinw((4, 4), 0.3, 2.0);
//   out_proj.bias = sinw((4,), 0.2, 3.0); x = cosx((2, 3, 4));
//   mha(x, x, x, key_padding_mask=[[F, F, F], [F, F, T]], need_weights=False)
// and likewise for every layer below (the arguments are repeated at each test).
#include <gtest/gtest.h>

#include <cmath>

#include "core/nn/attention.h"
#include "core/nn/conv.h"
#include "core/nn/embedding.h"
#include "core/nn/norm.h"
#include "core/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/values.h"

namespace strata::nn {
namespace {

using strata::testing::expect_near;

Tensor sinw(const Shape& shape, double scale = 0.5, double phase = 0.0) {
  std::vector<float> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(std::sin(i + phase) * scale);
  return from_vector(v, shape);
}

Tensor cosx(const Shape& shape, double k = 0.7) {
  std::vector<float> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(std::cos(i * k));
  return from_vector(v, shape);
}

/// Overwrites a parameter's values (as torch's `with no_grad(): p.copy_(v)`).
void set(Tensor p, const Tensor& values) {
  NoGradGuard no_grad;
  copy_(p, values);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::shared_ptr<MultiheadAttention> tiny_mha(bool batch_first = true) {
  Generator gen(1);
  auto mha = std::make_shared<MultiheadAttention>(
      MultiheadAttentionOptions{.embed_dim = 4, .num_heads = 2, .batch_first = batch_first}, gen);
  set(mha->in_proj_weight(), sinw({12, 4}));
  set(mha->in_proj_bias(), sinw({12}, 0.1, 1.0));
  set(mha->out_proj().weight(), sinw({4, 4}, 0.3, 2.0));
  set(mha->out_proj().bias(), sinw({4}, 0.2, 3.0));
  return mha;
}

TEST(NnMultiheadAttention, KeyPaddingMaskMatchesTorch) {
  auto mha = tiny_mha();
  Tensor x = cosx({2, 3, 4});
  Tensor kpm = from_vector<uint8_t>({0, 0, 0, 0, 0, 1}, {2, 3}).to(DType::b8);
  expect_near(
      mha->forward(x, x, x, kpm),
      {-0.042048812f, -0.098654807f, -0.19041353f,  -0.11038151f,  0.14524913f,   -0.32880557f,
       -0.076838307f, -0.028706193f, -0.063951008f, -0.065130234f, -0.21233758f,  -0.11524504f,
       0.13389316f,   -0.26300049f,  -0.15150848f,  0.0031041019f, 0.046899483f,  -0.12440027f,
       -0.24570511f,  -0.012354057f, 0.083722629f,  -0.27362236f,  -0.087452106f, -0.070014112f});
}

TEST(NnMultiheadAttention, CausalFlagAndBoolMaskMatchTorch) {
  auto mha = tiny_mha();
  Tensor x = cosx({2, 3, 4});
  // attn_mask = torch.triu(torch.ones(3, 3, dtype=torch.bool), 1)
  std::vector<float> want{0.04589963f,   -0.28035921f,  -0.040822104f, -0.12423606f,  0.14876734f,
                          -0.32489207f,  -0.085472561f, -0.021332234f, -0.063951008f, -0.065130234f,
                          -0.21233758f,  -0.11524504f,  0.0075041391f, -0.055297807f, -0.29664651f,
                          -0.014861487f, 0.046899483f,  -0.12440027f,  -0.24570511f,  -0.012354057f,
                          0.047549136f,  -0.26955521f,  -0.056595549f, -0.11441964f};
  expect_near(mha->forward(x, x, x, Tensor(), Tensor(), /*causal=*/true), want);
  Tensor triu = from_vector<uint8_t>({0, 1, 1, 0, 0, 1, 0, 0, 0}, {3, 3}).to(DType::b8);
  expect_near(mha->forward(x, x, x, Tensor(), triu), want);
}

TEST(NnMultiheadAttention, CrossAttentionMatchesTorch) {
  auto mha = tiny_mha();
  Tensor x = cosx({2, 3, 4});
  Tensor kv = cosx({2, 2, 4}, 1.3);  // mha(x, kv, kv * 2)
  std::vector<float> want{-0.090110876f, -0.25955838f,   0.067995727f, -0.28729308f,  -0.031555474f,
                          -0.24777064f,  -0.0059696287f, -0.20238684f, -0.085367672f, -0.2367985f,
                          0.033498824f,  -0.26495558f,   0.32085073f,  -0.44166654f,  -0.10489815f,
                          0.12083711f,   0.17679799f,    -0.24608299f, -0.21652932f,  0.071187541f,
                          0.30898669f,   -0.40784192f,   -0.13725264f, 0.12930907f};
  expect_near(mha->forward(x, kv, kv * 2.0, Tensor()), want);
  // Sequence-first layout gives the same numbers, transposed.
  auto seq_first = tiny_mha(false);
  Tensor y = seq_first->forward(x.transpose(0, 1), kv.transpose(0, 1), (kv * 2.0).transpose(0, 1),
                                Tensor());
  expect_near(y.transpose(0, 1), want);
}

TEST(NnMultiheadAttention, GradientsMatchFiniteDifferences) {
  auto mha = tiny_mha();
  mha->to(DType::f64);
  Tensor q = testing::leaf({2, 3, 4}, 1), kv = testing::leaf({2, 2, 4}, 2);
  Tensor kpm = from_vector<uint8_t>({0, 0, 0, 1}, {2, 2}).to(DType::b8);
  auto cross = [&](const std::vector<Tensor>& in) {
    return mha->forward(in[0], in[1], in[1], kpm);
  };
  EXPECT_TRUE(testing::gradcheck(
      cross, {q, kv, mha->in_proj_weight(), mha->in_proj_bias(), mha->out_proj().weight()}));
  auto causal = [&](const std::vector<Tensor>& in) {
    return mha->forward(in[0], in[0], in[0], Tensor(), Tensor(), true);
  };
  EXPECT_TRUE(testing::gradcheck(causal, {q, mha->in_proj_weight(), mha->in_proj_bias()}));
}

TEST(NnMultiheadAttention, StateDictKeysAndInitFollowTorch) {
  Generator gen(2);
  MultiheadAttention mha(MultiheadAttentionOptions{.embed_dim = 8, .num_heads = 2}, gen);
  std::vector<std::string> keys;
  for (auto& [name, t] : mha.state_dict()) keys.push_back(name);
  EXPECT_EQ(keys, (std::vector<std::string>{"in_proj_bias", "in_proj_weight", "out_proj.bias",
                                            "out_proj.weight"}));
  EXPECT_EQ(mha.in_proj_weight().shape(), (Shape{24, 8}));
  EXPECT_EQ(sum(abs(mha.in_proj_bias())).item(), 0.0);
  EXPECT_EQ(sum(abs(mha.out_proj().bias())).item(), 0.0);
  double bound = std::sqrt(6.0 / (8 + 24));  // xavier_uniform_ on (3E, E)
  EXPECT_LE(max(abs(mha.in_proj_weight())).item(), bound);
  Tensor x = cosx({2, 5, 8});
  sum(mha.forward(x)).backward();
  EXPECT_EQ(mha.in_proj_weight().grad().shape(), (Shape{24, 8}));
}

TEST(NnMultiheadAttention, BadOptionsAndMasksAreErrors) {
  Generator gen(3);
  EXPECT_EQ(error_of([&] {
              MultiheadAttention(MultiheadAttentionOptions{.embed_dim = 6, .num_heads = 4}, gen);
            }),
            "[MultiheadAttention] embed_dim (6) must be divisible by num_heads (4)");
  auto mha = tiny_mha();
  Tensor x = cosx({2, 3, 4});
  EXPECT_EQ(error_of([&] {
              mha->forward(x, x, x, zeros({2, 3}));
            }),
            "[MultiheadAttention] key_padding_mask must be bool (2, 3) (true = padding), got "
            "f32[2, 3] cpu");
  EXPECT_EQ(error_of([&] {
              mha->forward(cosx({2, 3, 5}));
            }),
            "[MultiheadAttention] query, key and value must be (B, T, 4) (embed_dim), got "
            "f32[2, 3, 5] cpu");
}

TEST(NnBatchNorm, TrainUpdatesRunningStatsAndEvalUsesThem) {
  BatchNorm2d bn(BatchNormOptions{.num_features = 3});
  set(bn.weight(), from_vector<float>({1, 2, 0.5f}, {3}));
  set(bn.bias(), from_vector<float>({0, -1, 0.5f}, {3}));
  Tensor x = cosx({2, 3, 2, 2}, 0.9) * 2.0 + 0.5;
  // torch: bn(x) in train mode, the buffers after it, then bn.eval(); bn(x).
  expect_near(bn.forward(x),
              {1.0695213f,   0.47678167f,  -0.85286391f, -1.913166f,  -3.0351663f,  -0.99122268f,
               1.5280561f,   2.6161304f,   0.89017218f,  0.27719325f, -0.20316643f, -0.18738021f,
               -0.80137032f, 0.51748872f,  1.0686356f,   0.43497336f, -1.1372908f,  -3.098253f,
               -2.9893212f,  -0.89293301f, 0.92756373f,  1.1710666f,  0.87072325f,  0.25382742f});
  expect_near(bn.running_mean(), {0.11344893f, 0.0072516873f, 0.063220881f});
  expect_near(bn.running_var(), {1.0862948f, 1.1059551f, 1.1207349f});
  EXPECT_EQ(bn.num_batches_tracked().item(), 1.0);
  bn.eval();
  expect_near(bn.forward(x), {2.2897859f,   1.5636903f,   -0.065101936f,  -1.3639534f, -3.4737701f,
                              -0.86467594f, 2.3511837f,   3.7401104f,     1.2809371f,  0.47623906f,
                              -0.15436086f, -0.13363725f, -0.0020232382f, 1.6135558f,  2.2887011f,
                              1.512476f,    -1.051132f,   -3.5543001f,    -3.4152489f, -0.73920918f,
                              1.3300234f,   1.6496857f,   1.2554051f,     0.44556519f});
  EXPECT_EQ(bn.num_batches_tracked().item(), 1.0);  // eval leaves the buffers alone
  std::vector<std::string> keys;
  for (auto& [name, t] : bn.state_dict()) keys.push_back(name);
  EXPECT_EQ(keys, (std::vector<std::string>{"bias", "num_batches_tracked", "running_mean",
                                            "running_var", "weight"}));
}

TEST(NnBatchNorm, CumulativeAverageWithoutMomentum) {
  // nn.BatchNorm1d(2, momentum=None); bn(cosx((4, 2), 1.1)); bn(cosx((4, 2), 0.3) * 3)
  BatchNorm1d bn(BatchNormOptions{.num_features = 2, .momentum = std::nullopt});
  bn.forward(cosx({4, 2}, 1.1));
  bn.forward(cosx({4, 2}, 0.3) * 3.0);
  expect_near(bn.running_mean(), {0.86698407f, 0.46958414f});
  expect_near(bn.running_var(), {1.6991302f, 2.1285775f});
  EXPECT_EQ(error_of([&] {
              bn.forward(zeros({4, 3}));
            }),
            "[BatchNorm1d] expected input (N, C) or (N, C, L) with C = 2, got f32[4, 3] cpu");
  EXPECT_EQ(error_of([] { BatchNorm2d(BatchNormOptions{.num_features = 2, .eps = 0}); }),
            "[BatchNorm2d] eps must be positive, got 0");
}

TEST(NnBatchNorm, WithoutRunningStatsAlwaysUsesTheBatch) {
  BatchNorm2d bn(
      BatchNormOptions{.num_features = 3, .affine = false, .track_running_stats = false});
  EXPECT_TRUE(bn.state_dict().empty());
  Tensor x = cosx({2, 3, 2, 2}, 0.9) * 2.0 + 0.5;
  std::vector<float> train = bn.forward(x).to_vector<float>();
  bn.eval();
  EXPECT_EQ(bn.forward(x).to_vector<float>(), train);
  // Per channel the output is standardised with the biased batch variance.
  Tensor c0 = bn.forward(x).select(1, 0);
  EXPECT_NEAR(mean(c0).item(), 0.0, 1e-6);
  EXPECT_NEAR(mean(square(c0)).item(), 1.0, 1e-4);
}

TEST(NnLayerNorm, MatchesTorch) {
  LayerNorm ln(LayerNormOptions{.normalized_shape = {4}});
  set(ln.weight(), sinw({4}, 1.0, 0.5));
  set(ln.bias(), sinw({4}, 0.1));
  expect_near(ln.forward(cosx({2, 3, 4})),
              {0.52874613f, 0.78161883f,   -0.10171042f, 0.53334528f,  -0.41268981f, -0.76201499f,
               0.16281888f, -0.54327077f,  0.16024257f,  1.1304767f,   0.24964856f,  0.59234405f,
               0.4306688f,  -0.94937629f,  -0.48242378f, -0.37029222f, -0.78354192f, 0.43497649f,
               0.73636681f, -0.057500184f, 0.76915729f,  0.16334081f,  -0.43252012f, 0.29792362f});
  EXPECT_EQ(error_of([&] {
              ln.forward(zeros({2, 3}));
            }),
            "[LayerNorm] expected input (..., 4) (normalized_shape), got f32[2, 3] cpu");
}

TEST(NnGroupNorm, MatchesTorch) {
  GroupNorm gn(GroupNormOptions{.num_groups = 2, .num_channels = 4});
  set(gn.weight(), sinw({4}, 1.0, 0.5));
  set(gn.bias(), sinw({4}, 0.1));
  expect_near(gn.forward(cosx({2, 4, 3}, 0.4)),
              {0.5415796f,  0.46755531f,  0.25716925f,  -0.033122569f, -0.79707712f, -1.5520372f,
               0.1385949f,  -0.38780078f, -0.53190309f, 0.22622778f,   -0.13998038f, -0.66163433f,
               -0.9047001f, -0.33483338f, 0.12440282f,  0.91744012f,   1.0201765f,   0.63496935f,
               1.0174239f,  0.63868415f,  0.2178712f,   0.17207886f,   0.35348335f,  0.45528132f});
  EXPECT_EQ(error_of([] { GroupNorm(GroupNormOptions{.num_groups = 3, .num_channels = 4}); }),
            "[GroupNorm] num_channels (4) must be divisible by num_groups (3)");
}

TEST(NnInstanceNorm2d, AffineMatchesTorch) {
  InstanceNorm2d in(InstanceNormOptions{.num_features = 2, .affine = true});
  set(in.weight(), from_vector<float>({1.5f, -0.5f}, {2}));
  set(in.bias(), from_vector<float>({0.2f, 0.1f}, {2}));
  expect_near(in.forward(cosx({1, 2, 2, 3}, 0.8)),
              {2.4432468f, 1.8359458f, 0.38242382f, -1.0356325f, -1.558049f, -0.867935f,
               0.23330542f, -0.32654235f, -0.50360876f, -0.19048768f, 0.42288581f, 0.96444762f});
  EXPECT_EQ(InstanceNorm2d(InstanceNormOptions{.num_features = 2}).named_parameters().size(), 0u);
}

TEST(NnConv2d, GroupedStridedMatchesTorch) {
  // nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 0), groups=2)
  Generator gen(4);
  Conv2d conv(Conv2dOptions{.in_channels = 2,
                            .out_channels = 4,
                            .kernel_size = {3, 2},
                            .stride = {2, 1},
                            .padding = {1, 0},
                            .groups = 2},
              gen);
  EXPECT_EQ(conv.weight().shape(), (Shape{4, 1, 3, 2}));
  double bound = 1.0 / std::sqrt(6.0);  // fan_in = 1 * 3 * 2
  EXPECT_LE(max(abs(conv.weight())).item(), bound);
  EXPECT_LE(max(abs(conv.bias())).item(), bound);
  set(conv.weight(), sinw({4, 1, 3, 2}));
  set(conv.bias(), sinw({4}, 0.1, 1.0));
  Tensor y = conv.forward(cosx({1, 2, 4, 3}, 0.6));
  EXPECT_EQ(y.shape(), (Shape{1, 4, 2, 2}));
  expect_near(y, {1.0365574f, 1.2386475f, -1.3689374f, -1.3680305f, 1.1861715f, 1.2694435f,
                  -1.3169113f, -1.0920364f, 0.93747085f, 0.35708678f, -0.44787958f, 0.32247582f,
                  0.64525038f, 0.038287029f, -0.076846771f, 0.62962538f});
  EXPECT_EQ(
      error_of([&] {
        Conv2d(
            Conv2dOptions{.in_channels = 3, .out_channels = 4, .kernel_size = {3, 3}, .groups = 2},
            gen);
      }),
      "[Conv2d] in_channels (3) must be divisible by groups (2)");
  EXPECT_EQ(error_of([&] {
              conv.forward(zeros({1, 3, 4, 4}));
            }),
            "[Conv2d] expected input (N, 2, H, W), got f32[1, 3, 4, 4] cpu");
}

TEST(NnConvTranspose2d, OutputPaddingMatchesTorch) {
  // nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)
  Generator gen(5);
  ConvTranspose2d ct(ConvTranspose2dOptions{.in_channels = 2,
                                            .out_channels = 3,
                                            .kernel_size = {3, 3},
                                            .stride = {2, 2},
                                            .padding = {1, 1},
                                            .output_padding = {1, 1}},
                     gen);
  EXPECT_EQ(ct.weight().shape(), (Shape{2, 3, 3, 3}));
  EXPECT_LE(max(abs(ct.bias())).item(), 1.0 / std::sqrt(27.0));  // fan_in = 3 * 3 * 3
  set(ct.weight(), sinw({2, 3, 3, 3}));
  set(ct.bias(), sinw({3}, 0.1, 1.0));
  Tensor y = ct.forward(cosx({1, 2, 2, 2}, 0.6));
  EXPECT_EQ(y.shape(), (Shape{1, 3, 4, 4}));
  expect_near(
      y, {-0.14528674f,  -0.051316738f, -0.028163821f, -0.58452427f,   0.24855748f,  0.35430574f,
          -0.068628877f, 0.76375186f,   0.12819256f,   -0.11067279f,   0.26916257f,  0.057910442f,
          -0.034050502f, 0.24201922f,   -0.12018153f,  0.076715559f,   0.026292376f, -0.053784378f,
          -0.10450906f,  0.57823914f,   0.44363481f,   0.20796743f,    0.6033988f,   -0.27361944f,
          -0.16703811f,  0.1662297f,    -0.13945156f,  0.017278947f,   0.41171828f,  0.059601568f,
          0.32752913f,   0.19580622f,   0.36133194f,   0.41328254f,    0.48256332f,  -0.20522137f,
          -0.79301894f,  -0.4693197f,   -0.7669642f,   -0.0011892272f, 0.44015118f,  0.071715787f,
          0.24891128f,   0.17455958f,   -0.45225066f,  -0.08667203f,   -0.21270512f, -0.16956873f});
  EXPECT_EQ(error_of([&] {
              ConvTranspose2d(ConvTranspose2dOptions{.in_channels = 2,
                                                     .out_channels = 3,
                                                     .kernel_size = {3, 3},
                                                     .output_padding = {1, 0}},
                              gen);
            }),
            "[ConvTranspose2d] output_padding (1, 0) must be non-negative and smaller than "
            "either stride or dilation");
}

TEST(NnEmbedding, LooksUpRowsAndZeroesThePaddingRow) {
  Generator gen(6);
  Embedding emb(EmbeddingOptions{.num_embeddings = 5, .embedding_dim = 3, .padding_idx = -1}, gen);
  std::vector<float> w = emb.weight().to_vector<float>();
  EXPECT_EQ(std::vector<float>(w.begin() + 12, w.end()), std::vector<float>(3, 0.0f));
  Tensor idx = from_vector<int64_t>({1, 4, 1, 0}, {2, 2});
  Tensor y = emb.forward(idx);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 3}));
  std::vector<float> v = y.to_vector<float>();
  EXPECT_EQ(std::vector<float>(v.begin(), v.begin() + 3),
            std::vector<float>(w.begin() + 3, w.begin() + 6));
  EXPECT_EQ(std::vector<float>(v.begin() + 3, v.begin() + 6), std::vector<float>(3, 0.0f));
  sum(y).backward();
  std::vector<float> g = emb.weight().grad().to_vector<float>();
  EXPECT_EQ(g[3], 2.0f);   // row 1 used twice
  EXPECT_EQ(g[12], 0.0f);  // padding row gets no gradient
  EXPECT_EQ(error_of([&] {
              Embedding(EmbeddingOptions{.num_embeddings = 5, .embedding_dim = 3, .padding_idx = 5},
                        gen);
            }),
            "[Embedding] padding_idx must be in [-5, 5), got 5");
}

TEST(NnDropout, TrainMasksReproduciblyAndEvalIsIdentity) {
  Dropout a(DropoutOptions{.p = 0.25}, Generator(42));
  Dropout b(DropoutOptions{.p = 0.25}, Generator(42));
  Tensor x = ones({4000});
  std::vector<float> ya = a.forward(x).to_vector<float>();
  EXPECT_EQ(ya, b.forward(x).to_vector<float>());
  int64_t zeros_seen = 0;
  for (float v : ya) {
    if (v == 0) {
      ++zeros_seen;
    } else {
      EXPECT_FLOAT_EQ(v, 1.0f / 0.75f);
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / 4000, 0.25, 0.03);
  EXPECT_NE(a.forward(x).to_vector<float>(), ya);  // the generator advanced
  a.eval();
  EXPECT_TRUE(a.forward(x).same(x));
  Dropout all(DropoutOptions{.p = 1.0}, Generator(1));
  EXPECT_EQ(sum(all.forward(x)).item(), 0.0);
  EXPECT_EQ(error_of([] { Dropout(DropoutOptions{.p = 1.5}, Generator(1)); }),
            "[Dropout] p must be in [0, 1], got 1.5");
}

}  // namespace
}  // namespace strata::nn
