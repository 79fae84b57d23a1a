// LeNet-5 and a 2-block GPT against torch 1.13 in float32 (tests/golden/fixtures/{lenet5,
// gpt2block}.h5): the torch model's state_dict loads strictly into the strata model, and the
// loss and every parameter's gradient on the stored batch must match.
//
// Tolerances (f32; the sums run in another order than torch's, so results differ in the
// last bits): loss 1e-6 relative (measured: 1 ulp, 1e-7); gradients atol 1e-7 + rtol 1e-5
// (measured: at most 1.5e-8 absolute, 1.2e-6 relative, on gradients of ~1e-4 to 4e-2),
// which leaves a margin of about 20 for other BLAS builds and thread counts.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/ops.h"
#include "core/ops/loss.h"
#include "io/hdf5.h"
#include "models/gpt.h"
#include "models/lenet.h"
#include "tests/golden/golden.h"

namespace strata::models {
namespace {

constexpr double kLossRtol = 1e-6;
constexpr double kGradAtol = 1e-7;
constexpr double kGradRtol = 1e-5;

/// Every dataset under `group/` keyed by the rest of its name.
nn::StateDict read_group(const io::H5File& f, const std::string& group) {
  nn::StateDict out;
  for (const std::string& name : f.list(group))
    out[name.substr(group.size() + 1)] = f.read_tensor(name);
  return out;
}

/// Loads params/*, runs `loss_fn`, then compares the loss and grads/* with every trainable
/// parameter of `model` (the names must be the same set on both sides).
template <class LossFn>
void check_against_torch(nn::Module& model, const std::string& file, LossFn loss_fn) {
  io::H5File f(golden::fixture_path(file), io::H5File::Mode::read);
  model.load_state_dict(read_group(f, "params"), /*strict=*/true);
  Tensor loss = loss_fn(read_group(f, "inputs"));
  double want = f.read_tensor("loss").item();
  EXPECT_NEAR(loss.item(), want, kLossRtol * std::abs(want)) << file << " loss";
  loss.backward();
  nn::StateDict grads = read_group(f, "grads");
  std::set<std::string> mine;
  for (const auto& [name, p] : model.named_parameters()) {
    mine.insert(name);
    auto it = grads.find(name);
    if (it == grads.end()) {
      ADD_FAILURE() << file << ": torch has no gradient for strata parameter " << name;
      continue;
    }
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    EXPECT_TRUE(golden::all_close(p.grad(), it->second, kGradAtol, kGradRtol))
        << file << ": gradient of " << name;
  }
  for (const auto& [name, g] : grads) {
    EXPECT_TRUE(mine.count(name)) << file << ": torch parameter " << name << " missing in strata";
  }
}

TEST(GoldenModels, LeNet5LossAndGradientsMatchTorch) {
  Generator gen(0);
  LeNet5 model(1, 10, gen);
  check_against_torch(model, "lenet5.h5", [&](const nn::StateDict& in) {
    return cross_entropy(model.forward(in.at("x")), in.at("y"));
  });
}

TEST(GoldenModels, GptLossAndGradientsMatchTorch) {
  Generator gen(0);
  GPTConfig cfg{.vocab_size = 65,
                .block_size = 16,
                .n_layer = 2,
                .n_head = 2,
                .n_embd = 32,
                .dropout = 0.0,
                .bias = true,
                .tie_weights = true};
  GPT model(cfg, gen);
  check_against_torch(model, "gpt2block.h5", [&](const nn::StateDict& in) {
    return model.loss(in.at("idx"), in.at("targets"));
  });
}

}  // namespace
}  // namespace strata::models
