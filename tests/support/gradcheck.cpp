// Central differences against autograd in f64; also records which op nodes were covered.
#include "tests/support/gradcheck.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace strata::testing {
namespace {

void collect_names(const Tensor& out) {
  std::vector<Node*> stack;
  std::set<Node*> seen;
  if (out.grad_fn()) stack.push_back(out.grad_fn().get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    if (!n->accumulator) checked_ops().insert(n->name);
    for (auto& next : n->next) {
      if (next) stack.push_back(next.get());
    }
  }
}

double weighted_sum(const TensorFn& fn, const std::vector<Tensor>& inputs, const Tensor& v) {
  // Grad mode stays on: gradgradcheck's function itself runs a backward pass.
  Tensor out = fn(inputs);
  return sum(mul(out.to(DType::f64), v)).item();
}

/// Writes checked_ops() at the end of a test program to $STRATA_GRADCHECK_COVERAGE_DIR (set by
/// CTest for the gradcheck label), one file per program run, for the coverage test to read.
class CoverageReport : public ::testing::Environment {
 public:
  void TearDown() override {
    const char* dir = std::getenv("STRATA_GRADCHECK_COVERAGE_DIR");
    if (!dir || !*dir) return;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::string path = std::string(dir) + "/" + report_name() + ".txt";
    std::ofstream out(path);
    for (const std::string& name : checked_ops()) out << name << '\n';
    out.close();
    if (!out) ADD_FAILURE() << "[gradcheck] cannot write the coverage report " << path;
  }

 private:
  /// <program>.<test> when the run was one test (CTest runs each test alone), else <program>.
  static std::string report_name() {
    std::string name = std::filesystem::read_symlink("/proc/self/exe").filename().string();
    const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
    std::string only;
    int ran = 0;
    for (int i = 0; i < unit.total_test_suite_count(); ++i) {
      const ::testing::TestSuite& suite = *unit.GetTestSuite(i);
      for (int j = 0; j < suite.total_test_count(); ++j) {
        const ::testing::TestInfo& t = *suite.GetTestInfo(j);
        if (!t.should_run()) continue;
        ++ran;
        only = std::string(t.test_suite_name()) + "." + t.name();
      }
    }
    if (ran == 1) name += "." + only;
    for (char& c : name) {
      if (c == '/') c = '_';  // parameterised test names
    }
    return name;
  }
};

// Registered for every program that links the gradcheck support (gtest's documented way).
[[maybe_unused]] ::testing::Environment* const kCoverageReport =
    ::testing::AddGlobalTestEnvironment(new CoverageReport);

}  // namespace

std::set<std::string>& checked_ops() {
  static std::set<std::string> names;
  return names;
}

std::string source_dir() {
  // The environment wins so that an installed test binary can be pointed at a checkout.
  const char* dir = std::getenv("STRATA_SOURCE_DIR");
  return dir ? dir : STRATA_SOURCE_DIR_DEFAULT;
}

Tensor leaf(const Shape& shape, uint64_t seed, double lo, double hi) {
  Generator gen(seed);
  Tensor t = rand(shape, gen, DType::f64, lo, hi);
  t.set_requires_grad(true);
  return t;
}

::testing::AssertionResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opts) {
  Tensor out = fn(inputs);
  if (!out.requires_grad()) return ::testing::AssertionFailure() << "output does not require grad";
  collect_names(out);
  Generator gen(opts.seed);
  Tensor v = randn(out.shape(), gen, DType::f64);
  Tensor loss = sum(mul(out.to(DType::f64), v));
  std::vector<Tensor> wrt;
  for (const Tensor& t : inputs) {
    if (t.requires_grad()) wrt.push_back(t);
  }
  std::vector<Tensor> analytic = grad({loss}, wrt, {}, false, false, true);
  for (size_t i = 0; i < wrt.size(); ++i) {
    Tensor x = wrt[i];
    double* p = x.data<double>();  // perturbed in place; restored below
    std::vector<double> a = analytic[i].defined() ? analytic[i].to_vector<double>()
                                                  : std::vector<double>(x.numel(), 0.0);
    for (int64_t j = 0; j < x.numel(); ++j) {
      double orig = p[j];
      p[j] = orig + opts.eps;
      double fp = weighted_sum(fn, inputs, v);
      p[j] = orig - opts.eps;
      double fm = weighted_sum(fn, inputs, v);
      p[j] = orig;
      double numeric = (fp - fm) / (2 * opts.eps);
      if (std::abs(numeric - a[j]) > opts.atol + opts.rtol * std::abs(numeric)) {
        return ::testing::AssertionFailure() << "input " << i << " element " << j << ": autograd "
                                             << a[j] << " vs finite difference " << numeric;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                         const GradcheckOptions& opts) {
  Tensor probe = fn(inputs);
  Generator gen(opts.seed + 1);
  Tensor w = randn(probe.shape(), gen, DType::f64);
  TensorFn first = [&fn, w](const std::vector<Tensor>& xs) {
    std::vector<Tensor> wrt;
    for (const Tensor& t : xs) {
      if (t.requires_grad()) wrt.push_back(t);
    }
    Tensor out = fn(xs);
    std::vector<Tensor> g = grad({out}, wrt, {w}, true, true, true);
    Tensor total = scalar_tensor(0, DType::f64);
    for (size_t i = 0; i < g.size(); ++i) {
      if (g[i].defined()) total = add(total, sum(mul(g[i], g[i])));
    }
    return total;
  };
  if (!GradMode::enabled()) return ::testing::AssertionFailure() << "grad mode is off";
  return gradcheck(first, inputs, opts);
}

}  // namespace strata::testing
