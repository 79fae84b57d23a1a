// nn basics: Module registration, names, state_dict, freezing, modes, initialisers, Linear,
// Sequential and the activation layers.
#include <gtest/gtest.h>

#include <cmath>

#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/init.h"
#include "core/nn/linear.h"
#include "core/ops.h"
#include "tests/support/values.h"

namespace strata::nn {
namespace {

using strata::testing::expect_near;

/// fc(x) * scale, with a buffer, so that every registry has entries.
class Block : public Layer {
 public:
  explicit Block(Generator& gen) {
    fc = register_module("fc", std::make_shared<Linear>(LinearOptions{4, 4}, gen));
    scale = register_parameter("scale", ones({4}));
    count = register_buffer("count", zeros({1}, DType::i64));
  }
  Tensor forward(const Tensor& x) override { return fc->forward(x) * scale; }
  std::shared_ptr<Linear> fc;
  Tensor scale;
  Tensor count;
};

class Net : public Layer {
 public:
  explicit Net(Generator& gen) {
    alpha = register_parameter("alpha", full({1}, 2.0));
    blocks = register_module(
        "blocks",
        std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
            std::make_shared<Block>(gen), std::make_shared<ReLU>(), std::make_shared<Block>(gen)}));
    head = register_module("head", std::make_shared<Linear>(LinearOptions{4, 2}, gen));
  }
  Tensor forward(const Tensor& x) override { return head->forward(blocks->forward(x * alpha)); }
  Tensor alpha;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<Linear> head;
};

/// Wraps one layer as child "fc", for load_state_dict messages.
class Wrapper : public Module {
 public:
  Wrapper(int64_t in, int64_t out, Generator& gen) {
    fc = register_module("fc", std::make_shared<Linear>(LinearOptions{in, out}, gen));
  }
  std::shared_ptr<Linear> fc;
};

std::vector<std::string> names(const NamedTensors& list) {
  std::vector<std::string> out;
  for (const auto& [name, t] : list) out.push_back(name);
  return out;
}

TEST(NnModule, NamesAreDottedInRegistrationOrder) {
  Generator gen(1);
  Net net(gen);
  EXPECT_EQ(names(net.named_parameters()),
            (std::vector<std::string>{"alpha", "blocks.0.scale", "blocks.0.fc.weight",
                                      "blocks.0.fc.bias", "blocks.2.scale", "blocks.2.fc.weight",
                                      "blocks.2.fc.bias", "head.weight", "head.bias"}));
  EXPECT_EQ(names(net.named_buffers()),
            (std::vector<std::string>{"blocks.0.count", "blocks.2.count"}));
  EXPECT_EQ(names(net.named_parameters("model")).front(), "model.alpha");
  std::vector<std::string> modules;
  for (auto& [name, m] : net.named_modules()) modules.push_back(name);
  EXPECT_EQ(modules, (std::vector<std::string>{"", "blocks", "blocks.0", "blocks.0.fc", "blocks.1",
                                               "blocks.2", "blocks.2.fc", "head"}));
  auto children = net.named_children();
  ASSERT_EQ(children.size(), 2u);
  EXPECT_EQ(children[0].first, "blocks");
  EXPECT_EQ(children[1].second, net.head.get());
  EXPECT_EQ(net.num_parameters(), 1 + 2 * (4 + 16 + 4) + 8 + 2);
  EXPECT_EQ(net.state_dict().size(), 11u);
}

TEST(NnModule, DuplicateOrDottedNamesAreErrors) {
  class Bad : public Module {
   public:
    void add(const std::string& name) { register_parameter(name, zeros({1})); }
  };
  Bad m;
  m.add("w");
  EXPECT_THROW(m.add("w"), Error);
  try {
    m.add("a.b");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[Module] parameter name 'a.b' must be non-empty and contain no '.'");
  }
}

TEST(NnModule, TiedParametersAreListedOnceButSavedUnderEveryName) {
  class Tied : public Module {
   public:
    Tied() {
      Tensor w = register_parameter("a", ones({2, 2}));
      register_parameter("b", w);
    }
  };
  Tied m;
  EXPECT_EQ(names(m.named_parameters()), (std::vector<std::string>{"a"}));
  EXPECT_EQ(m.num_parameters(), 4);
  StateDict state = m.state_dict();
  EXPECT_EQ(state.size(), 2u);
  EXPECT_EQ(state.at("a").storage(), state.at("b").storage());
}

TEST(NnModule, StateDictRoundTripsIntoLiveHandles) {
  Generator g1(1), g2(2);
  Net src(g1), dst(g2);
  Tensor x = from_vector<float>({0.5f, -1.0f, 2.0f, 0.25f}, {1, 4});
  EXPECT_NE(src.forward(x).to_vector<float>(), dst.forward(x).to_vector<float>());
  auto problems = dst.load_state_dict(src.state_dict());
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(src.forward(x).to_vector<float>(), dst.forward(x).to_vector<float>());
  // The layer's own handle sees the loaded values, and state_dict views share storage.
  EXPECT_EQ(dst.head->weight().to_vector<float>(), src.head->weight().to_vector<float>());
  EXPECT_EQ(dst.state_dict().at("head.weight").storage(), dst.head->weight().storage());
  EXPECT_TRUE(dst.head->weight().requires_grad());
}

TEST(NnModule, StrictLoadListsEveryProblemAndLoadsNothing) {
  Generator gen(3);
  Wrapper model(4, 4, gen);
  std::vector<float> before = model.fc->weight().to_vector<float>();
  StateDict state{{"fc.weight", zeros({3, 4})}};
  try {
    model.load_state_dict(state);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[load_state_dict] 2 problems: missing key 'fc.bias'; shape mismatch for "
                 "'fc.weight': checkpoint [3, 4] vs model [4, 4]");
  }
  state = {{"fc.weight", zeros({4, 4})}, {"fc.bias", zeros({4})}, {"extra", zeros({1})}};
  try {
    model.load_state_dict(state);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[load_state_dict] 1 problem: unexpected key 'extra'");
  }
  EXPECT_EQ(model.fc->weight().to_vector<float>(), before);
}

TEST(NnModule, NonStrictLoadsMatchesAndReportsTheRest) {
  Generator gen(3);
  Wrapper model(4, 4, gen);
  StateDict state{{"fc.weight", ones({4, 4}, DType::f64)},
                  {"fc.bias", zeros({5})},
                  {"head.weight", zeros({2})}};
  auto skipped = model.load_state_dict(state, /*strict=*/false);
  EXPECT_EQ(skipped, (std::vector<std::string>{
                         "unexpected key 'head.weight'",
                         "shape mismatch for 'fc.bias': checkpoint [5] vs model [4]"}));
  EXPECT_EQ(model.fc->weight().to_vector<float>(), std::vector<float>(16, 1.0f));
  EXPECT_EQ(model.fc->weight().dtype(), DType::f32);
}

TEST(NnModule, FreezingRemovesParametersAndStopsGradients) {
  Generator gen(4);
  Net net(gen);
  net.blocks->set_frozen(true);
  EXPECT_EQ(net.trainable_parameters().size(), 3u);  // alpha, head.weight, head.bias
  EXPECT_EQ(net.parameters().size(), 9u);
  Tensor x = from_vector<float>({0.5f, -1.0f, 2.0f, 0.25f, 1, 1, 1, 1}, {2, 4});
  sum(net.forward(x)).backward();
  EXPECT_FALSE(net.blocks->named_parameters()[0].second.grad().defined());
  EXPECT_FALSE((*net.blocks)[0].named_parameters()[1].second.grad().defined());
  EXPECT_TRUE(net.head->weight().grad().defined());
  EXPECT_TRUE(net.alpha.grad().defined());
  net.zero_grad();
  EXPECT_FALSE(net.head->weight().grad().defined());
  net.set_frozen(false);
  EXPECT_EQ(net.trainable_parameters().size(), 9u);
}

TEST(NnModule, TrainAndEvalPropagateToEveryChild) {
  Generator gen(5);
  Net net(gen);
  for (auto& [name, m] : net.named_modules()) EXPECT_TRUE(m->is_training()) << name;
  net.eval();
  for (auto& [name, m] : net.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net.blocks->train();
  EXPECT_FALSE(net.is_training());
  EXPECT_TRUE((*net.blocks)[2].is_training());
  EXPECT_FALSE(net.head->is_training());
}

TEST(NnModule, ToConvertsInPlaceAndKeepsHandles) {
  Generator gen(6);
  Net net(gen);
  Tensor w = net.head->weight();
  std::vector<float> values = w.to_vector<float>();
  net.to(DType::f64);
  EXPECT_EQ(w.dtype(), DType::f64);
  EXPECT_EQ(net.head->weight().dtype(), DType::f64);
  EXPECT_TRUE(w.requires_grad());
  EXPECT_EQ(net.blocks->named_buffers()[0].second.dtype(), DType::i64);  // integer buffers stay
  std::vector<double> converted = w.to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(converted[i], values[i]);
  Tensor y = net.forward(ones({2, 4}, DType::f64));
  EXPECT_EQ(y.dtype(), DType::f64);
  EXPECT_THROW(net.to(DType::i32), Error);
}

TEST(NnInit, GainsMatchTorch) {
  using init::Nonlinearity;
  // torch.nn.init.calculate_gain('tanh'), ('relu'), ('leaky_relu'), ('leaky_relu', 0.2),
  // ('selu'), ('leaky_relu', 5 ** 0.5).
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::tanh), 1.6666666666666667);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::relu), 1.4142135623730951);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::leaky_relu), 1.4141428569978354);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::leaky_relu, 0.2), 1.3867504905630728);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::selu), 0.75);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::leaky_relu, std::sqrt(5.0)),
                   0.5773502691896257);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::linear), 1.0);
  auto [fan_in, fan_out] = init::fan_in_and_fan_out(zeros({8, 3, 5, 5}));
  EXPECT_EQ(fan_in, 75);
  EXPECT_EQ(fan_out, 200);
}

struct Stats {
  double mean = 0, var = 0, max_abs = 0;
};

Stats stats(const Tensor& t) {
  Stats s;
  std::vector<double> v = t.to_vector<double>();
  for (double x : v) s.mean += x / static_cast<double>(v.size());
  for (double x : v) {
    s.var += (x - s.mean) * (x - s.mean) / static_cast<double>(v.size());
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  return s;
}

TEST(NnInit, UniformInitialisersHitTorchBounds) {
  Generator gen(7);
  // (256, 128): fan_in 128, fan_out 256. kaiming relu bound = sqrt(2) * sqrt(3 / 128).
  Tensor w = zeros({256, 128});
  init::kaiming_uniform_(w, gen, 0, init::FanMode::fan_in, init::Nonlinearity::relu);
  double bound = std::sqrt(2.0) * std::sqrt(3.0 / 128);
  Stats s = stats(w);
  EXPECT_LE(s.max_abs, bound);
  EXPECT_GT(s.max_abs, 0.99 * bound);
  EXPECT_NEAR(s.var, bound * bound / 3, 0.03 * bound * bound / 3);
  EXPECT_NEAR(s.mean, 0, 0.01 * bound);
  init::kaiming_uniform_(w, gen, 0, init::FanMode::fan_out, init::Nonlinearity::relu);
  EXPECT_LE(stats(w).max_abs, std::sqrt(2.0) * std::sqrt(3.0 / 256));
  init::xavier_uniform_(w, gen, 2.0);
  double xbound = 2.0 * std::sqrt(6.0 / (128 + 256));
  s = stats(w);
  EXPECT_LE(s.max_abs, xbound);
  EXPECT_GT(s.max_abs, 0.99 * xbound);
}

TEST(NnInit, NormalInitialisersHaveTorchStd) {
  Generator gen(8);
  Tensor w = zeros({256, 128}, DType::f64);
  init::kaiming_normal_(w, gen, 0, init::FanMode::fan_out, init::Nonlinearity::relu);
  double std = std::sqrt(2.0 / 256);  // gain sqrt(2) / sqrt(fan_out)
  EXPECT_NEAR(std::sqrt(stats(w).var), std, 0.02 * std);
  init::xavier_normal_(w, gen);
  double xstd = std::sqrt(2.0 / (128 + 256));
  EXPECT_NEAR(std::sqrt(stats(w).var), xstd, 0.02 * xstd);
  init::normal_(w, gen, 3.0, 0.5);
  Stats s = stats(w);
  EXPECT_NEAR(s.mean, 3.0, 0.01);
  EXPECT_NEAR(std::sqrt(s.var), 0.5, 0.01);
  init::trunc_normal_(w, gen, 0.0, 1.0, -0.5, 1.0);
  std::vector<double> v = w.to_vector<double>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), -0.5);
  EXPECT_LE(*std::max_element(v.begin(), v.end()), 1.0);
  EXPECT_LT(*std::min_element(v.begin(), v.end()), -0.49);
  init::zeros_(w);
  EXPECT_EQ(stats(w).max_abs, 0.0);
  init::ones_(w);
  EXPECT_EQ(stats(w).mean, 1.0);
}

TEST(NnInit, SameGeneratorStateGivesSameValues) {
  Generator a(9), b(9);
  Tensor x = zeros({4, 4}), y = zeros({4, 4});
  init::xavier_uniform_(x, a);
  init::xavier_uniform_(y, b);
  EXPECT_EQ(x.to_vector<float>(), y.to_vector<float>());
  init::xavier_uniform_(x, a);
  EXPECT_NE(x.to_vector<float>(), y.to_vector<float>());
}

TEST(NnInit, VectorsHaveNoFans) {
  Generator gen(1);
  try {
    init::kaiming_uniform_(zeros({4}), gen);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[init] fan in and fan out need a tensor with at least 2 dimensions, got "
                 "f32[4] cpu");
  }
}

TEST(NnLinear, ForwardAndDefaultInit) {
  Generator gen(10);
  Linear fc(LinearOptions{64, 3}, gen);
  double bound = 1.0 / 8.0;  // 1 / sqrt(in_features), torch's default for weight and bias
  EXPECT_LE(stats(fc.weight()).max_abs, bound);
  EXPECT_GT(stats(fc.weight()).max_abs, 0.9 * bound);
  EXPECT_LE(stats(fc.bias()).max_abs, bound);
  Wrapper small(2, 2, gen);
  small.load_state_dict({{"fc.weight", from_vector<float>({1, 2, 3, 4}, {2, 2})},
                         {"fc.bias", from_vector<float>({0.5f, -1}, {2})}});
  Tensor y = small.fc->forward(from_vector<float>({1, 1, 2, 0}, {2, 2}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{3.5f, 6, 2.5f, 5}));
  Linear nobias(LinearOptions{2, 5, false}, gen);
  EXPECT_FALSE(nobias.bias().defined());
  EXPECT_EQ(nobias.named_parameters().size(), 1u);
}

TEST(NnLinear, BadOptionsAndInputsNameTheLayer) {
  Generator gen(1);
  try {
    Linear fc(LinearOptions{0, 3}, gen);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[Linear] in_features must be positive, got 0");
  }
  Linear fc(LinearOptions{4, 3}, gen);
  try {
    fc.forward(zeros({2, 5}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[Linear] expected input (..., 4) (in_features), got f32[2, 5] cpu");
  }
}

TEST(NnSequential, ChainsLayersNamedByIndex) {
  Generator gen(11);
  Sequential seq{std::make_shared<Linear>(LinearOptions{3, 4}, gen), std::make_shared<ReLU>(),
                 std::make_shared<Linear>(LinearOptions{4, 2}, gen)};
  seq.push_back(std::make_shared<Tanh>());
  EXPECT_EQ(seq.size(), 4);
  EXPECT_EQ(names(seq.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  Tensor x = from_vector<float>({1, -2, 3, 0.5f, 0.5f, -1}, {2, 3});
  Tensor expect = tanh(seq[2].forward(relu(seq[0].forward(x))));
  EXPECT_EQ(seq.forward(x).to_vector<float>(), expect.to_vector<float>());
  EXPECT_EQ(Sequential().forward(x).to_vector<float>(), x.to_vector<float>());
  EXPECT_THROW(seq[4], Error);
  EXPECT_EQ(&seq[-1], &seq[3]);
}

TEST(NnActivation, LayersMatchTorch) {
  Tensor x = from_vector<float>({-2, -0.5f, 0, 0.5f, 2}, {5});
  // torch.nn.functional.gelu(x), gelu(x, approximate='tanh'), silu(x), leaky_relu(x, 0.2).
  expect_near(GELU().forward(x), {-0.045500099658966064f, -0.1542687863111496f, 0.0f,
                                  0.3457311987876892f, 1.9544999599456787f});
  expect_near(GELU(GELUOptions{true}).forward(x), {-0.04540228843688965f, -0.1542859971523285f,
                                                   0.0f, 0.3457140028476715f, 1.9545977115631104f});
  expect_near(SiLU().forward(x), {-0.23840583860874176f, -0.1887703388929367f, 0.0f,
                                  0.3112296760082245f, 1.7615940570831299f});
  expect_near(LeakyReLU(LeakyReLUOptions{0.2}).forward(x), {-0.4f, -0.1f, 0, 0.5f, 2});
  expect_near(ReLU().forward(x), {0, 0, 0, 0.5f, 2});
  expect_near(Sigmoid().forward(x), {0.11920292f, 0.37754067f, 0.5f, 0.62245933f, 0.88079708f});
  expect_near(Tanh().forward(x), {-0.96402758f, -0.46211716f, 0, 0.46211716f, 0.96402758f});
  EXPECT_TRUE(Identity().forward(x).same(x));
}

TEST(NnActivation, FlattenKeepsTheBatchDim) {
  Tensor x = zeros({2, 3, 4, 5});
  EXPECT_EQ(Flatten().forward(x).shape(), (Shape{2, 60}));
  EXPECT_EQ(Flatten(FlattenOptions{0, 1}).forward(x).shape(), (Shape{6, 4, 5}));
  EXPECT_THROW(Flatten(FlattenOptions{2, 1}).forward(x), Error);
}

}  // namespace
}  // namespace strata::nn
