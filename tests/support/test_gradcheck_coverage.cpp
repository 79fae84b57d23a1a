// The guard that fails when an op has no gradcheck: every op name core can record (read from
// the sources) must appear in the coverage reports that the gradcheck tests write.
// CTest runs it after all gradcheck tests (fixture gradcheck_runs, tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <sstream>

#include "core/backend/backend.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_names.h"

namespace strata::testing {
namespace {

/// Names that may stay without a gradcheck, each because it has no derivative by design.
const std::map<std::string, std::string>& allowed_without_gradcheck() {
  static const std::map<std::string, std::string> kAllowed = {
      // Comparisons (binary_name's table) return bool masks; they are never recorded.
      {"eq", "bool output"},
      {"ne", "bool output"},
      {"lt", "bool output"},
      {"le", "bool output"},
      {"gt", "bool output"},
      {"ge", "bool output"},
      // The Heaviside step kernel (unary_name's table): zero derivative almost everywhere.
      {"step", "piecewise constant"},
      // The fused CUDA attention has no f64 kernel for finite differences: its gradients are
      // compared with the gradchecked CPU composition (matmul, masked_softmax) instead.
      {"scaled_dot_product_attention", "CUDA only; tests/core/test_cuda_attention.cpp"},
      // Likewise the packed node: its CPU composition (slices and the attention above) is
      // gradchecked as GradcheckAttention.PackedSelfAttention, the CUDA node compared with it.
      {"packed_self_attention", "CUDA only; tests/core/test_cuda_attention.cpp"},
  };
  return kAllowed;
}

std::string join(const std::set<std::string>& names) {
  std::ostringstream os;
  for (const std::string& n : names) os << "\n  " << n;
  return os.str();
}

TEST(GradcheckCoverage, EveryRecordedOpHasAGradcheck) {
  // Not STRATA_GRADCHECK_COVERAGE_DIR: this program must not write a report of its own.
  const char* dir = std::getenv("STRATA_GRADCHECK_REPORTS");
  ASSERT_TRUE(dir && *dir) << "STRATA_GRADCHECK_REPORTS is not set: run this through ctest "
                              "(ctest -L gradcheck), which runs the gradcheck tests first";
  OpNameScan scan = scan_core(source_dir());
  std::ostringstream unresolved;
  for (const std::string& u : scan.unresolved) unresolved << "\n  " << u;
  EXPECT_TRUE(scan.unresolved.empty())
      << "op names the scanner cannot follow; pass record() a string literal, a local "
         "const char* or a const char* parameter:"
      << unresolved.str();
  int reports = 0;
  std::set<std::string> covered = read_coverage_reports(dir, &reports);
  ASSERT_GT(reports, 0) << "no gradcheck coverage reports in " << dir;
  std::set<std::string> missing;
  for (const std::string& name : scan.names) {
    if (covered.count(name) || allowed_without_gradcheck().count(name)) continue;
    // to_device records only between two devices, so only a GPU machine can check it
    // (tests/core/test_gradcheck_elementwise.cpp, DeviceCopy).
    if (name == "to_device" && cuda_backend().device_count() == 0) continue;
    missing.insert(name);
  }
  EXPECT_TRUE(missing.empty()) << missing.size()
                               << " op(s) recorded in core/ without a gradcheck; add one to "
                                  "tests/core/test_gradcheck_<family>.cpp:"
                               << join(missing);
  for (const auto& [name, why] : allowed_without_gradcheck()) {
    EXPECT_TRUE(scan.names.count(name)) << "stale allow-list entry " << name << " (" << why << ")";
  }
}

TEST(GradcheckCoverage, ScannerFollowsLiteralsLocalsParametersAndTables) {
  const std::string src = R"cpp(
    // record("commented_out", ...) is not code
    const char* kind_name(Kind k) {
      static constexpr const char* kNames[] = {"alpha", "beta"};
      return kNames[static_cast<int>(k)];
    }
    Tensor by_table(Kind k, const Tensor& x) { return record(kind_name(k), x, {x}, fn); }
    Tensor literal(const Tensor& x) { return record_fused("fused_op", x, {x}, fn); }
    Tensor local(bool a, const Tensor& x) {
      const char* op = a ? "local_a" : "local_b";
      return record(op, x, {x}, [op](const Tensor& g) { return Grads{g}; });
    }
    Tensor inner(const char* op, const Tensor& x) {
      if (x.dim() == 0) return inner(op, x);
      return record(op, x, {x}, fn);
    }
    Tensor outer(const char* name, const Tensor& x) { return inner(name, x); }
    Tensor first(const Tensor& x) { return outer("param_one", x); }
    Tensor second(const Tensor& x) { return inner("param_two", x); }
  )cpp";
  OpNameScan scan;
  scan_source("snippet.cpp", src, true, scan);
  EXPECT_TRUE(scan.unresolved.empty()) << ::testing::PrintToString(scan.unresolved);
  EXPECT_EQ(scan.names, (std::set<std::string>{"alpha", "beta", "fused_op", "local_a", "local_b",
                                               "param_one", "param_two"}));
}

TEST(GradcheckCoverage, ScannerReportsNamesItCannotFollow) {
  const std::string src = R"cpp(
    Tensor f(const Tensor& x) {
      return record(make_name(x) + suffix, x, {x}, fn);
    }
  )cpp";
  OpNameScan scan;
  scan_source("snippet.cpp", src, false, scan);
  EXPECT_TRUE(scan.names.empty());
  EXPECT_EQ(scan.unresolved,
            std::vector<std::string>{"snippet.cpp:3: record(make_name(x) + suffix, ...)"});
}

TEST(GradcheckCoverage, ScannerFindsCoresComputedNames) {
  OpNameScan scan = scan_core(source_dir());
  for (const char* name : {"add", "gelu_tanh", "scatter_add", "instance_norm", "min", "log_softmax",
                           "adaptive_avg_pool2d_backward", "layer_norm"}) {
    EXPECT_TRUE(scan.names.count(name)) << name;
  }
}

}  // namespace
}  // namespace strata::testing
