// The training loop. Progress and metrics come from rank 0 only.
#include "launch/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/ops.h"
#include "core/optim/clip.h"
#include "io/metrics.h"

namespace strata::launch {
namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  auto s = static_cast<int64_t>(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buf;
}

struct Progress {
  Clock::time_point start = Clock::now();
  Clock::time_point window_start = Clock::now();
  int64_t window_items = 0;
};

void report(const Task& task, int64_t step, int64_t total, double loss, double lr, Progress& prog,
            io::MetricsLog& log, bool rank0) {
  double dt = std::chrono::duration<double>(Clock::now() - prog.window_start).count();
  double rate = dt > 0 ? static_cast<double>(prog.window_items) / dt : 0.0;
  double elapsed = std::chrono::duration<double>(Clock::now() - prog.start).count();
  double eta =
      step > 0 ? elapsed / static_cast<double>(step) * static_cast<double>(total - step) : 0.0;
  log.write(Json{{"step", step},
                 {"loss", loss},
                 {"lr", lr},
                 {"throughput", rate},
                 {"unit", std::string(task.item_unit()) + "/s"}});
  if (rank0) {
    std::printf("step %6lld/%lld | loss %.4f | lr %.3e | %.0f %s/s | ETA %s\n",
                static_cast<long long>(step), static_cast<long long>(total), loss, lr, rate,
                task.item_unit(), format_duration(eta).c_str());
    std::fflush(stdout);
  }
  prog.window_start = Clock::now();
  prog.window_items = 0;
}

Json run_eval(Task& task, int64_t step, io::MetricsLog& log, bool rank0) {
  task.model().eval();
  Json ev;
  {
    NoGradGuard guard;
    ev = task.evaluate();
  }
  task.model().train();
  log.write(Json{{"step", step}, {"eval", ev}});
  if (rank0) {
    std::printf("eval  step %lld: %s\n", static_cast<long long>(step), ev.dump().c_str());
    std::fflush(stdout);
  }
  return ev;
}

}  // namespace

int64_t total_steps(const Json& cfg, const Task& task) {
  int64_t max_steps = get<int64_t>(cfg, "train.max_steps");
  int64_t total =
      max_steps > 0 ? max_steps : get<int64_t>(cfg, "train.epochs") * task.steps_per_epoch();
  check(total > 0, "[train] nothing to do: set train.epochs or train.max_steps above 0");
  return total;
}

TrainResult train(TrainParts& parts, const Json& cfg, const LaunchEnv& env) {
  Task& task = *parts.task;
  bool rank0 = env.rank == 0;
  std::string run_dir = get<std::string>(cfg, "run_dir");
  io::MetricsLog log(rank0 ? (std::filesystem::path(run_dir) / "metrics.jsonl").string() : "");
  int64_t max_steps = get<int64_t>(cfg, "train.max_steps");
  int64_t per_epoch = task.steps_per_epoch();
  int64_t total = total_steps(cfg, task);
  int64_t log_every = std::max<int64_t>(1, get<int64_t>(cfg, "train.log_every"));
  int64_t eval_every = get<int64_t>(cfg, "train.eval_every");
  double clip = get<double>(cfg, "train.grad_clip");
  std::vector<Tensor> params = task.model().trainable_parameters();

  TrainResult result;
  Progress prog;
  task.model().train();
  for (int64_t step = 0; step < total; ++step) {
    double lr = parts.lr_at(step);
    for (auto& g : parts.optimizer->groups()) g.lr = lr;
    parts.optimizer->zero_grad();
    Tensor loss = task.train_loss();
    loss.backward();
    if (clip > 0) optim::clip_grad_norm_(params, clip);
    parts.optimizer->step();
    prog.window_items += task.items_per_step();
    int64_t done = step + 1;
    if (done % log_every == 0 || done == total) {
      result.last_loss = loss.item();
      check(std::isfinite(result.last_loss), "[train] loss became ", result.last_loss, " at step ",
            done, "; lower optim.lr or set train.grad_clip");
      report(task, done, total, result.last_loss, lr, prog, log, rank0);
    }
    bool epoch_end = max_steps == 0 && done % per_epoch == 0;
    if (epoch_end) task.next_epoch();
    if ((eval_every > 0 && done % eval_every == 0) || (eval_every == 0 && epoch_end)) {
      result.final_eval = run_eval(task, done, log, rank0);
    }
  }
  if (result.final_eval.is_null() || (eval_every > 0 && total % eval_every != 0)) {
    result.final_eval = run_eval(task, total, log, rank0);
  }
  result.steps = total;
  result.seconds = std::chrono::duration<double>(Clock::now() - prog.start).count();
  return result;
}

}  // namespace strata::launch
