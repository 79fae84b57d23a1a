// Learning-rate schedules as pure functions of the step count, so a resumed run sets exactly
// the rate an uninterrupted one would; a Scheduler applies one to an Optimizer's groups.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/optim/optimizer.h"

namespace strata::optim {

class Schedule {
 public:
  virtual ~Schedule() = default;
  /// The learning rate after `step` scheduler steps (0: the rate of the first optimizer
  /// step) for a group whose configured rate is `base_lr`.
  virtual double lr_at(int64_t step, double base_lr) const = 0;
};
using SchedulePtr = std::shared_ptr<const Schedule>;

/// base_lr at every step.
SchedulePtr constant_lr();
/// base_lr * gamma^(step / step_size) (torch StepLR).
SchedulePtr step_lr(int64_t step_size, double gamma = 0.1);
/// base_lr * gamma^(number of milestones <= step) (torch MultiStepLR).
SchedulePtr multistep_lr(std::vector<int64_t> milestones, double gamma = 0.1);
/// base_lr * gamma^step (torch ExponentialLR).
SchedulePtr exponential_lr(double gamma);
/// base_lr * (1 - min(step, total_steps) / total_steps)^power (torch PolynomialLR).
SchedulePtr polynomial_lr(int64_t total_steps, double power = 1.0);
/// eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2 (torch
/// CosineAnnealingLR's closed form).
SchedulePtr cosine_lr(int64_t t_max, double eta_min = 0);
/// base_lr * (start_factor + (1 - start_factor) * step / warmup_steps) for step < warmup_steps,
/// then `after` from its own step 0 (torch SequentialLR([LinearLR, after], [warmup_steps])).
/// A null `after` holds base_lr.
SchedulePtr linear_warmup(int64_t warmup_steps, double start_factor, SchedulePtr after = nullptr);

enum class CyclicMode { triangular, triangular2, exp_range };
/// torch CyclicLR between base_lr (the group's rate) and max_lr: up for step_size_up steps,
/// down for step_size_down (default: the same). triangular2 halves the height every cycle;
/// exp_range scales it by gamma^step.
SchedulePtr cyclic_lr(double max_lr, int64_t step_size_up, int64_t step_size_down = -1,
                      CyclicMode mode = CyclicMode::triangular, double gamma = 1.0);
/// torch OneCycleLR (cos anneal, two phases) peaking at the group's rate: from
/// base_lr/div_factor up to base_lr over pct_start of total_steps, then down to
/// base_lr/div_factor/final_div_factor. Steps beyond total_steps are an Error, as in torch.
SchedulePtr one_cycle_lr(int64_t total_steps, double pct_start = 0.3, double div_factor = 25,
                         double final_div_factor = 1e4);

/// Applies a schedule to every group of an optimizer, from the groups' rates at
/// construction. The optimizer must outlive the scheduler.
class Scheduler {
 public:
  /// Records the groups' rates as base rates and sets the step-0 rates (as torch does).
  Scheduler(Optimizer& optimizer, SchedulePtr schedule);
  /// Advances one step and sets the new rates; call after optimizer.step().
  void step() { set_step(step_ + 1); }
  /// Jumps to `step` (resume): the rates are exactly those of an uninterrupted run.
  void set_step(int64_t step);
  int64_t step_count() const { return step_; }
  /// The rate of group 0 at `step`.
  double lr_at(int64_t step) const { return schedule_->lr_at(step, base_lrs_.at(0)); }
  const std::vector<double>& base_lrs() const { return base_lrs_; }

 private:
  Optimizer& optimizer_;
  SchedulePtr schedule_;
  std::vector<double> base_lrs_;
  int64_t step_ = 0;
};

}  // namespace strata::optim
