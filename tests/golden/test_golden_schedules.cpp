// Learning-rate schedules against torch 1.13's lr_scheduler (tests/golden/fixtures/schedules.h5).
//
// make_fixtures.py runs SGD(lr=0.1, momentum=0.9) with each scheduler for 30 steps and
// records param_groups[0]["lr"] before every optimizer step, so entry s is the rate of step
// s and entry 0 is the rate right after construction. A strata Scheduler gives the same
// rate at step_count() == s. Closed forms against torch's recursive updates differ by
// rounding only: 1e-12 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>

#include "core/ops.h"
#include "core/optim/schedule.h"
#include "core/optim/sgd.h"
#include "io/hdf5.h"
#include "tests/golden/golden.h"

namespace strata::optim {
namespace {

constexpr double kRtol = 1e-12;
constexpr double kAtol = 1e-15;

struct ScheduleCase {
  std::string name;
  double base_lr;  // the group's rate: torch's CyclicLR overwrites it with its base_lr
  std::function<SchedulePtr()> make;
};

/// The torch arguments of each schedule, copied from make_fixtures.py.
const std::vector<ScheduleCase>& cases() {
  static const std::vector<ScheduleCase> kCases = {
      {"step", 0.1, [] { return step_lr(7, 0.5); }},
      {"multistep", 0.1,
       [] {
         return multistep_lr({5, 12, 20}, 0.3);
       }},
      {"exponential", 0.1, [] { return exponential_lr(0.9); }},
      {"polynomial", 0.1, [] { return polynomial_lr(20, 2.0); }},
      {"cosine", 0.1, [] { return cosine_lr(30, 0.001); }},
      {"warmup_cosine", 0.1, [] { return linear_warmup(5, 0.1, cosine_lr(25, 0.001)); }},
      {"cyclic_triangular", 0.01, [] { return cyclic_lr(0.1, 4); }},
      {"cyclic_triangular2", 0.01, [] { return cyclic_lr(0.1, 4, -1, CyclicMode::triangular2); }},
      {"cyclic_exp_range", 0.01, [] { return cyclic_lr(0.1, 4, -1, CyclicMode::exp_range, 0.95); }},
      // OneCycleLR(max_lr=0.1, ...) peaks at 0.1; strata peaks at the group's rate.
      {"onecycle", 0.1, [] { return one_cycle_lr(30, 0.3, 25.0, 1e4); }},
  };
  return kCases;
}

std::vector<std::string> case_names() {
  std::vector<std::string> out;
  for (const ScheduleCase& c : cases()) out.push_back(c.name);
  return out;
}

TEST(GoldenSchedules, FixtureHoldsExactlyTheCasesTested) {
  io::H5File f(golden::fixture_path("schedules.h5"), io::H5File::Mode::read);
  std::vector<std::string> listed = f.list(), names = case_names();
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()),
            std::set<std::string>(names.begin(), names.end()));
}

class GoldenScheduleCase : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenScheduleCase, EveryStepMatchesTorch) {
  const std::string name = GetParam();
  const ScheduleCase& c =
      *std::find_if(cases().begin(), cases().end(), [&](const auto& k) { return k.name == name; });
  io::H5File f(golden::fixture_path("schedules.h5"), io::H5File::Mode::read);
  std::vector<double> expected = f.read_tensor(c.name).to_vector<double>();
  ASSERT_EQ(expected.size(), 30u);
  Tensor p = zeros({1}, DType::f64);
  p.set_requires_grad(true);
  SGD opt({p}, SGDOptions{.lr = c.base_lr, .momentum = 0.9});
  Scheduler sched(opt, c.make());
  for (size_t s = 0; s < expected.size(); ++s) {
    ASSERT_EQ(sched.step_count(), static_cast<int64_t>(s));
    EXPECT_NEAR(opt.lr(), expected[s], kAtol + kRtol * std::abs(expected[s]))
        << c.name << " at step " << s;
    opt.step();  // no gradient: a no-op, kept to mirror the torch loop
    sched.step();
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, GoldenScheduleCase, ::testing::ValuesIn(case_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace strata::optim
