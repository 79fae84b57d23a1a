// Closed forms of torch.optim.lr_scheduler's schedules, one small class each.
#include "core/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace strata::optim {
namespace {

/// A schedule given by a lambda of (step, base_lr).
template <class F>
class FnSchedule : public Schedule {
 public:
  explicit FnSchedule(F f) : f_(std::move(f)) {}
  double lr_at(int64_t step, double base_lr) const override {
    check(step >= 0, "[lr_schedule] step must be >= 0, got ", step);
    return f_(step, base_lr);
  }

 private:
  F f_;
};

template <class F>
SchedulePtr make(F f) {
  return std::make_shared<FnSchedule<F>>(std::move(f));
}

double cos_anneal(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1);
}

}  // namespace

SchedulePtr constant_lr() {
  return make([](int64_t, double base) { return base; });
}

SchedulePtr step_lr(int64_t step_size, double gamma) {
  check(step_size > 0, "[step_lr] step_size must be positive, got ", step_size);
  return make([=](int64_t s, double base) {
    return base * std::pow(gamma, static_cast<double>(s / step_size));
  });
}

SchedulePtr multistep_lr(std::vector<int64_t> milestones, double gamma) {
  std::sort(milestones.begin(), milestones.end());
  return make([milestones, gamma](int64_t s, double base) {
    auto passed = std::upper_bound(milestones.begin(), milestones.end(), s) - milestones.begin();
    return base * std::pow(gamma, static_cast<double>(passed));
  });
}

SchedulePtr exponential_lr(double gamma) {
  return make([=](int64_t s, double base) { return base * std::pow(gamma, double(s)); });
}

SchedulePtr polynomial_lr(int64_t total_steps, double power) {
  check(total_steps > 0, "[polynomial_lr] total_steps must be positive, got ", total_steps);
  return make([=](int64_t s, double base) {
    double done = static_cast<double>(std::min(s, total_steps)) / static_cast<double>(total_steps);
    return base * std::pow(1.0 - done, power);
  });
}

SchedulePtr cosine_lr(int64_t t_max, double eta_min) {
  check(t_max > 0, "[cosine_lr] t_max must be positive, got ", t_max);
  return make([=](int64_t s, double base) {
    return eta_min +
           (base - eta_min) * (1 + std::cos(std::numbers::pi * double(s) / double(t_max))) / 2;
  });
}

SchedulePtr linear_warmup(int64_t warmup_steps, double start_factor, SchedulePtr after) {
  check(warmup_steps >= 0, "[linear_warmup] warmup_steps must be >= 0, got ", warmup_steps);
  check(start_factor >= 0 && start_factor <= 1, "[linear_warmup] start_factor must be in [0, 1], ",
        "got ", start_factor);
  if (!after) after = constant_lr();
  return make([=](int64_t s, double base) {
    if (s >= warmup_steps) return after->lr_at(s - warmup_steps, base);
    return base * (start_factor + (1 - start_factor) * double(s) / double(warmup_steps));
  });
}

SchedulePtr cyclic_lr(double max_lr, int64_t step_size_up, int64_t step_size_down, CyclicMode mode,
                      double gamma) {
  if (step_size_down < 0) step_size_down = step_size_up;
  check(step_size_up > 0 && step_size_down > 0, "[cyclic_lr] step sizes must be positive, got ",
        step_size_up, " up and ", step_size_down, " down");
  const double total = double(step_size_up + step_size_down);
  const double ratio = double(step_size_up) / total;
  return make([=](int64_t s, double base) {
    double cycle = std::floor(1 + double(s) / total);
    double x = 1.0 + double(s) / total - cycle;
    double scale = x <= ratio ? x / ratio : (x - 1) / (ratio - 1);
    double height = (max_lr - base) * scale;
    switch (mode) {
      case CyclicMode::triangular:
        return base + height;
      case CyclicMode::triangular2:
        return base + height * (1 / std::pow(2.0, cycle - 1));
      case CyclicMode::exp_range:
        return base + height * std::pow(gamma, double(s));
    }
    return base;
  });
}

SchedulePtr one_cycle_lr(int64_t total_steps, double pct_start, double div_factor,
                         double final_div_factor) {
  check(total_steps > 0, "[one_cycle_lr] total_steps must be positive, got ", total_steps);
  check(pct_start > 0 && pct_start < 1, "[one_cycle_lr] pct_start must be in (0, 1), got ",
        pct_start);
  const double up_end = pct_start * double(total_steps) - 1, down_end = double(total_steps - 1);
  return make([=](int64_t s, double peak) {
    check(s <= total_steps, "[one_cycle_lr] step ", s, " is beyond total_steps ", total_steps,
          "; raise total_steps to cover the whole run");
    const double initial = peak / div_factor, min_lr = initial / final_div_factor;
    const double t = double(s);
    if (t <= up_end) return cos_anneal(initial, peak, t / up_end);
    return cos_anneal(peak, min_lr, (t - up_end) / (down_end - up_end));
  });
}

Scheduler::Scheduler(Optimizer& optimizer, SchedulePtr schedule)
    : optimizer_(optimizer), schedule_(std::move(schedule)) {
  check(schedule_ != nullptr, "[Scheduler] needs a schedule");
  for (const ParamGroup& g : optimizer_.groups()) base_lrs_.push_back(*g.lr);
  set_step(0);
}

void Scheduler::set_step(int64_t step) {
  auto& groups = optimizer_.groups();
  check(groups.size() == base_lrs_.size(), "[Scheduler] the optimizer has ", groups.size(),
        " groups but the scheduler was made for ", base_lrs_.size());
  for (size_t g = 0; g < groups.size(); ++g) groups[g].lr = schedule_->lr_at(step, base_lrs_[g]);
  step_ = step;
}

}  // namespace strata::optim
