// strata's optimizers against torch 1.13 trajectories (tests/golden/fixtures/optim.h5).
//
// Each case of make_fixtures.py minimises loss(p) = sum((A p - b)^2) + 0.1 sum(p^4) for 20
// steps from p0 in float64 with one torch optimizer; the group of the case holds torch's
// kwargs as attributes and the 21 iterates. Here the same problem is rebuilt from A, b and
// p0, the strata optimizer is configured from those kwargs, and every iterate must match to
// 1e-12 relative (+1e-14 absolute): both sides compute the same f64 formulas, so only
// rounding in a different order separates them (measured: at most 1.6e-15 relative).
//
// LARS (core/optim/sgd.h) has no torch.optim equivalent; tests/core/test_optim.cpp checks
// it against torchlars' update written out by hand.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include "core/ops.h"
#include "core/optim/adagrad.h"
#include "core/optim/adam.h"
#include "core/optim/rmsprop.h"
#include "core/optim/sgd.h"
#include "io/hdf5.h"
#include "tests/golden/golden.h"

namespace strata::optim {
namespace {

constexpr double kAtol = 1e-14;
constexpr double kRtol = 1e-12;
constexpr int64_t kSteps = 20;

const std::vector<std::string> kCases = {"sgd",
                                         "sgd_momentum_dampening_wd",
                                         "sgd_nesterov",
                                         "adam",
                                         "adam_wd_amsgrad",
                                         "adamw",
                                         "adagrad",
                                         "rmsprop",
                                         "rmsprop_centered_momentum"};

/// torch's kwargs of one case; every key must be consumed, so a kwarg added to the script
/// but not mapped here fails the test instead of being silently ignored.
class Kwargs {
 public:
  explicit Kwargs(std::map<std::string, std::vector<double>> values) : values_(std::move(values)) {}
  double get(const std::string& key, double fallback) {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    used_.insert(key);
    check(it->second.size() == 1, "[golden] kwarg ", key, " should be a scalar");
    return it->second[0];
  }
  bool flag(const std::string& key, bool fallback) { return get(key, fallback ? 1 : 0) != 0; }
  std::vector<double> get_vec(const std::string& key, std::vector<double> fallback) {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    used_.insert(key);
    return it->second;
  }
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_) {
      if (!used_.count(k)) out.push_back(k);
    }
    return out;
  }

 private:
  std::map<std::string, std::vector<double>> values_;
  std::set<std::string> used_;
};

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

/// The strata optimizer for a case: the name's prefix picks the class (adamw before adam),
/// torch's kwargs fill the options and torch's defaults are strata's defaults.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, Kwargs& kw, const Tensor& p) {
  if (starts_with(name, "sgd")) {
    SGDOptions o;
    o.lr = kw.get("lr", o.lr);
    o.momentum = kw.get("momentum", o.momentum);
    o.dampening = kw.get("dampening", o.dampening);
    o.nesterov = kw.flag("nesterov", o.nesterov);
    o.weight_decay = kw.get("weight_decay", o.weight_decay);
    return std::make_unique<SGD>(std::vector<Tensor>{p}, o);
  }
  if (starts_with(name, "adam")) {
    AdamOptions o = starts_with(name, "adamw") ? AdamWOptions{} : AdamOptions{};
    o.lr = kw.get("lr", o.lr);
    std::vector<double> betas = kw.get_vec("betas", {o.beta1, o.beta2});
    check(betas.size() == 2, "[golden] betas should hold two values");
    o.beta1 = betas[0];
    o.beta2 = betas[1];
    o.eps = kw.get("eps", o.eps);
    o.weight_decay = kw.get("weight_decay", o.weight_decay);
    o.amsgrad = kw.flag("amsgrad", o.amsgrad);
    if (starts_with(name, "adamw")) {
      AdamWOptions w;
      static_cast<AdamOptions&>(w) = o;
      return std::make_unique<AdamW>(std::vector<Tensor>{p}, w);
    }
    return std::make_unique<Adam>(std::vector<Tensor>{p}, o);
  }
  if (starts_with(name, "adagrad")) {
    AdagradOptions o;
    o.lr = kw.get("lr", o.lr);
    o.lr_decay = kw.get("lr_decay", o.lr_decay);
    o.weight_decay = kw.get("weight_decay", o.weight_decay);
    o.initial_accumulator_value = kw.get("initial_accumulator_value", o.initial_accumulator_value);
    o.eps = kw.get("eps", o.eps);
    return std::make_unique<Adagrad>(std::vector<Tensor>{p}, o);
  }
  if (starts_with(name, "rmsprop")) {
    RMSpropOptions o;
    o.lr = kw.get("lr", o.lr);
    o.alpha = kw.get("alpha", o.alpha);
    o.eps = kw.get("eps", o.eps);
    o.weight_decay = kw.get("weight_decay", o.weight_decay);
    o.momentum = kw.get("momentum", o.momentum);
    o.centered = kw.flag("centered", o.centered);
    return std::make_unique<RMSprop>(std::vector<Tensor>{p}, o);
  }
  return nullptr;
}

/// sum((A p - b)^2) + 0.1 sum(p^4), as in make_fixtures.py.
Tensor loss_of(const Tensor& A, const Tensor& b, const Tensor& p) {
  Tensor r = sub(matmul(A, p), b);  // (7)
  return add(sum(square(r)), mul(sum(pow(p, 4.0)), scalar_tensor(0.1, DType::f64)));
}

TEST(GoldenOptim, FixtureHoldsExactlyTheCasesTested) {
  io::H5File f(golden::fixture_path("optim.h5"), io::H5File::Mode::read);
  std::set<std::string> in_file;
  for (const std::string& name : f.list()) {
    auto slash = name.find("/trajectory");
    if (slash != std::string::npos) in_file.insert(name.substr(0, slash));
  }
  EXPECT_EQ(in_file, std::set<std::string>(kCases.begin(), kCases.end()));
}

class GoldenOptimCase : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenOptimCase, EveryStepMatchesTorch) {
  const std::string name = GetParam();
  const std::string path = golden::fixture_path("optim.h5");
  io::H5File f(path, io::H5File::Mode::read);
  Tensor A = f.read_tensor("A"), b = f.read_tensor("b");
  Tensor traj = f.read_tensor(name + "/trajectory");  // (kSteps + 1, 5)
  ASSERT_EQ(traj.shape(), (Shape{kSteps + 1, 5}));
  Tensor p = f.read_tensor("p0").clone();
  p.set_requires_grad(true);
  Kwargs kw(golden::read_attributes(path, name));
  std::unique_ptr<Optimizer> opt = make_optimizer(name, kw, p);
  ASSERT_NE(opt, nullptr) << "no strata optimizer for case " << name;
  EXPECT_TRUE(kw.unused().empty())
      << "torch kwargs not mapped: " << ::testing::PrintToString(kw.unused());
  ASSERT_TRUE(golden::all_close(p, traj.select(0, 0), 0, 0));
  for (int64_t step = 1; step <= kSteps; ++step) {
    opt->zero_grad();
    loss_of(A, b, p).backward();
    opt->step();
    ASSERT_TRUE(golden::all_close(p, traj.select(0, step), kAtol, kRtol))
        << opt->name() << " case " << name << " after step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, GoldenOptimCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace strata::optim
