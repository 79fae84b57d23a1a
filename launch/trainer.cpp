// The training loop. Progress and metrics come from rank 0 only.
#include "launch/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/ops.h"
#include "distributed/grad_clip.h"
#include "io/metrics.h"
#include "launch/amp.h"
#include "launch/checkpointing.h"
#include "launch/signals.h"

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
  int64_t first_step = 0;  // where this process started (a resumed run starts at its checkpoint)
  Clock::time_point start = Clock::now();
  Clock::time_point window_start = Clock::now();
  int64_t window_items = 0;
  int64_t skipped_before = 0;  // TrainParts::skipped_steps when the window started
};

/// Where progress goes: metrics.jsonl and stdout on rank 0, and with log.per_rank every
/// rank's own <run_dir>/rank<N>.log.
struct Logs {
  io::MetricsLog metrics;
  std::ofstream rank_log;  // closed unless log.per_rank
  bool rank0 = false;
};

/// Opens the logs of this rank; `metrics` is "" on ranks other than 0.
Logs open_logs(const Json& cfg, const LaunchEnv& env, const std::string& metrics) {
  Logs logs{io::MetricsLog(metrics), std::ofstream(), env.rank == 0};
  if (get<bool>(cfg, "log.per_rank")) {
    auto path =
        std::filesystem::path(get<std::string>(cfg, "run_dir")) / str_cat("rank", env.rank, ".log");
    logs.rank_log.open(path, std::ios::app);  // a resumed run continues the file
    check(logs.rank_log.good(), "[train] log.per_rank: cannot open ", path.string(),
          " for writing; check run_dir");
  }
  return logs;
}

/// A line for this rank's own log (no-op unless log.per_rank).
void rank_line(Logs& logs, const std::string& line) {
  if (!logs.rank_log.is_open()) return;
  logs.rank_log << line << '\n';
  logs.rank_log.flush();
}

/// fp16 runs: the loss scale and the steps skipped so far (metrics), and a note on the
/// progress line when the window skipped some.
std::string amp_fields(const TrainParts& parts, Progress& prog, Json& record) {
  if (!parts.scaler) return "";
  record["loss_scale"] = parts.scaler->scale_value();
  record["skipped"] = parts.skipped_steps;
  int64_t fresh = parts.skipped_steps - prog.skipped_before;
  prog.skipped_before = parts.skipped_steps;
  char note[96];
  std::snprintf(note, sizeof note, " | scale %.0f", parts.scaler->scale_value());
  std::string text = note;
  if (fresh > 0) text += str_cat(" | skipped ", fresh, " step(s): inf/NaN gradients");
  return text;
}

/// Logs a progress line: `loss` is the mean over ranks, `local_loss` this rank's.
void report(const TrainParts& parts, int64_t step, int64_t total, double loss, double local_loss,
            double lr, Progress& prog, Logs& logs) {
  const Task& task = *parts.task;
  double dt = std::chrono::duration<double>(Clock::now() - prog.window_start).count();
  double rate = dt > 0 ? static_cast<double>(prog.window_items) / dt : 0.0;
  double elapsed = std::chrono::duration<double>(Clock::now() - prog.start).count();
  int64_t here = step - prog.first_step;
  double eta =
      here > 0 ? elapsed / static_cast<double>(here) * static_cast<double>(total - step) : 0.0;
  Json record{{"step", step},
              {"loss", loss},
              {"lr", lr},
              {"throughput", rate},
              {"unit", std::string(task.item_unit()) + "/s"}};
  std::string amp = amp_fields(parts, prog, record);
  logs.metrics.write(record);
  if (logs.rank0) {
    std::printf("step %6lld/%lld | loss %.4f | lr %.3e | %.0f %s/s | ETA %s%s\n",
                static_cast<long long>(step), static_cast<long long>(total), loss, lr, rate,
                task.item_unit(), format_duration(eta).c_str(), amp.c_str());
    std::fflush(stdout);
  }
  char line[256];
  std::snprintf(line, sizeof line,
                "step %6lld/%lld | loss %.4f (this rank %.4f) | lr %.3e | %.0f %s/s | ETA %s",
                static_cast<long long>(step), static_cast<long long>(total), loss, local_loss, lr,
                rate, task.item_unit(), format_duration(eta).c_str());
  rank_line(logs, line);
  prog.window_start = Clock::now();
  prog.window_items = 0;
}

Json run_eval(Task& task, int64_t step, Logs& logs) {
  task.model().eval();
  Json ev;
  {
    NoGradGuard guard;
    ev = task.evaluate();
  }
  task.model().train();
  logs.metrics.write(Json{{"step", step}, {"eval", ev}});
  rank_line(logs, str_cat("eval  step ", step, ": ", ev.dump()));
  if (logs.rank0) {
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

namespace {

/// The loop's fixed settings, read once from the config.
struct LoopSettings {
  int64_t total, stop, per_epoch, log_every, eval_every, ckpt_every;
  bool by_epoch;  // epochs (not max_steps) set the length: epoch ends start a new pass
  double clip;
};

LoopSettings loop_settings(const Json& cfg, const Task& task) {
  LoopSettings s{};
  s.total = total_steps(cfg, task);
  int64_t stop_at = get<int64_t>(cfg, "train.stop_at_step");
  s.stop = stop_at > 0 ? std::min(stop_at, s.total) : s.total;
  s.per_epoch = task.steps_per_epoch();
  s.log_every = std::max<int64_t>(1, get<int64_t>(cfg, "train.log_every"));
  s.eval_every = get<int64_t>(cfg, "train.eval_every");
  s.ckpt_every = get<int64_t>(cfg, "checkpoint.every");
  s.by_epoch = get<int64_t>(cfg, "train.max_steps") == 0;
  s.clip = get<double>(cfg, "train.grad_clip");
  return s;
}

/// Gradients averaged over the ranks: where they live and how they are spread.
struct AveragedGrads {
  std::vector<Tensor> params;  // whose .grad holds them
  dist::GradSharding sharding;
};

/// Averages this step's gradients: DataParallel leaves the full average on every parameter
/// (replicated), ZeRO reduce-scatters it into this rank's shards (sharded).
AveragedGrads average_gradients(TrainParts& parts, const std::vector<Tensor>& params) {
  if (parts.zero) {
    dist::Timeline::Scope span(parts.timeline.get(), "reduce_scatter gradients", "comm");
    parts.zero->reduce_gradients();
    return {parts.zero->shard_parameters(), dist::GradSharding::sharded};
  }
  parts.dp->finish_gradients();
  return {params, dist::GradSharding::replicated};
}

/// One step's forward and backward through the pipeline: gradients stay local during the
/// micro-batches and are averaged afterwards. Returns the mean loss (every stage has it).
Tensor pipeline_loss(TrainParts& parts) {
  parts.task->begin_pipeline_step();
  parts.pipeline->set_loss_scale(parts.scaler ? parts.scaler->scale_value() : 1.0);
  AutocastGuard amp(parts.autocast);  // backward passes turn it off themselves
  double loss = 0;
  if (parts.dp) {
    auto local = parts.dp->no_sync();
    loss = parts.pipeline->run();
  } else {
    loss = parts.pipeline->run();
  }
  return scalar_tensor(loss, DType::f64);
}

/// Sums the tied weights' gradients over the first and last stage (both then hold the
/// gradient of the weight as used by the embedding and the head together).
void sum_tied_gradients(TrainParts& parts) {
  for (Tensor& w : parts.tied) {
    if (!w.grad().defined()) w.set_grad(zeros_like(w));
    Tensor g = w.grad();
    parts.mesh.tie->all_reduce(g, dist::ReduceOp::sum);
  }
}

/// Copies the owner's updated tied weights to the last stage's copies.
void broadcast_tied_weights(TrainParts& parts) {
  NoGradGuard guard;
  for (Tensor& w : parts.tied) parts.mesh.tie->broadcast(w, 0);
}

/// Clipping's global norm: over data-parallel shards (ZeRO), over stages (each holds its own
/// parameters), or both; replicated gradients need no communication.
void clip_gradients(TrainParts& parts, const AveragedGrads& grads, double clip) {
  if (!parts.pipeline) {
    dist::clip_grad_norm_(grads.params, clip, 2.0, *parts.comm, grads.sharding);
    return;
  }
  dist::Communicator& over = parts.zero ? *parts.world : *parts.pipe;
  dist::clip_grad_norm_(grads.params, clip, 2.0, over, dist::GradSharding::sharded);
}

/// The update from this step's gradients: averaged, unscaled (fp16; a step with inf or NaN
/// gradients on any rank is skipped everywhere), clipped, applied.
void update_parameters(TrainParts& parts, double clip) {
  sum_tied_gradients(parts);
  AveragedGrads grads = average_gradients(parts, parts.params);
  bool skip = parts.scaler && unscale_gradients(parts, grads.params);
  if (parts.scaler) update_loss_scale(parts, skip);
  if (skip) return;
  // One clipping path for every layout: the norm is global over ranks either way.
  if (clip > 0) clip_gradients(parts, grads, clip);
  if (parts.zero) {
    // The update of this rank's shard, then the all-gather of the parameters.
    dist::Timeline::Scope span(parts.timeline.get(), "shard update + all_gather", "comm");
    parts.zero->step();
  } else {
    dist::Timeline::Scope span(parts.timeline.get(), "optimizer step", "compute");
    parts.optimizer->step();
  }
  broadcast_tied_weights(parts);
}

/// One optimizer step at 0-based `step`; returns the loss (with its graph freed).
Tensor train_step(TrainParts& parts, int64_t step, double clip, double& lr) {
  lr = parts.lr_at(step);
  for (auto& g : parts.step_optimizer().groups()) g.lr = lr;
  if (parts.zero) {
    parts.zero->zero_grad();
  } else {
    parts.optimizer->zero_grad();
  }
  for (Tensor& w : parts.tied) w.set_grad(Tensor());
  parts.world->set_step(step);
  parts.comm->set_step(step);
  parts.pipe->set_step(step);
  if (parts.mesh.tie) parts.mesh.tie->set_step(step);
  Tensor loss;
  {
    dist::Timeline::Scope span(parts.timeline.get(), "forward+backward", "compute");
    if (parts.pipeline) {
      loss = pipeline_loss(parts);
    } else {
      {
        AutocastGuard amp(parts.autocast);  // forward and loss; backward as usual
        loss = parts.task->train_loss();
      }
      (parts.scaler ? parts.scaler->scale(loss) : loss).backward();
    }
  }
  update_parameters(parts, clip);
  return loss;
}

/// Writes this rank's Chrome trace to <trace.path>.rank<N>.json (trace.path set).
void write_trace(const TrainParts& parts, const Json& cfg, const LaunchEnv& env) {
  if (!parts.timeline) return;
  std::filesystem::path path =
      str_cat(get<std::string>(cfg, "trace.path"), ".rank", env.rank, ".json");
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  parts.timeline->write_chrome_trace(path.string());
  if (env.rank == 0) {
    std::printf("trace: wrote %s.rank<N>.json (one per rank; open in ui.perfetto.dev)\n",
                get<std::string>(cfg, "trace.path").c_str());
  }
}

/// The loss averaged over the ranks, for logging (read back to the host, averaged there).
double mean_loss(dist::Communicator& host, const Tensor& loss) {
  Tensor l = full({1}, loss.item(), DType::f64);
  host.all_reduce(l, dist::ReduceOp::avg);
  return l.item();
}

/// The stop signal any rank received (every rank calls this at the same step boundary).
int agreed_signal(dist::Communicator& comm) {
  Tensor flag = full({1}, stop_signal(), DType::i64);
  comm.all_reduce(flag, dist::ReduceOp::max);
  return static_cast<int>(flag.item());
}

/// Copies rank 0's buffers (BatchNorm running statistics) to the other data-parallel ranks:
/// without SyncBatchNorm each rank's statistics follow its own batches, so evaluations and
/// checkpoints would depend on the rank (parallel.sync_bn keeps them equal, up to rounding).
void broadcast_buffers(TrainParts& parts) {
  if (parts.comm->size() == 1) return;
  NoGradGuard guard;
  for (auto& [name, buffer] : parts.task->model().named_buffers()) parts.comm->broadcast(buffer, 0);
}

/// Restores `resume` (if any) and trims the metrics log to it; returns the first step.
int64_t start_from(TrainParts& parts, const io::Checkpoint* resume, const std::string& metrics) {
  if (resume == nullptr) return 0;
  restore_checkpoint(parts, *resume);
  if (!metrics.empty()) trim_metrics(metrics, resume->step);
  return resume->step;
}

}  // namespace

TrainResult train(TrainParts& parts, const Json& cfg, const LaunchEnv& env,
                  const io::Checkpoint* resume) {
  Task& task = *parts.task;
  std::string metrics =
      env.rank == 0
          ? (std::filesystem::path(get<std::string>(cfg, "run_dir")) / "metrics.jsonl").string()
          : "";
  LoopSettings ls = loop_settings(cfg, task);
  configure_amp(parts, cfg);
  Tf32Guard tf32(get<bool>(cfg, "train.tf32"));  // forward, backward and evaluation alike
  int64_t start = start_from(parts, resume, metrics);
  Logs logs = open_logs(cfg, env, metrics);
  Checkpointer saver(cfg, env);
  TrainResult result;
  Progress prog;
  prog.first_step = start;
  prog.skipped_before = parts.skipped_steps;
  task.model().train();
  for (int64_t step = start; step < ls.stop; ++step) {
    saver.poll();  // a failed background save stops the run here
    double lr = 0;
    Tensor loss = train_step(parts, step, ls.clip, lr);
    prog.window_items += task.items_per_step();
    int64_t done = step + 1;
    if (done % ls.log_every == 0 || done == ls.total) {
      result.last_loss = mean_loss(parts.host_comm(), loss);
      check(std::isfinite(result.last_loss), "[train] loss became ", result.last_loss, " at step ",
            done, "; lower optim.lr or set train.grad_clip");
      report(parts, done, ls.total, result.last_loss, loss.item(), lr, prog, logs);
    }
    bool epoch_end = ls.by_epoch && done % ls.per_epoch == 0;
    if (epoch_end) task.next_epoch();
    if ((ls.eval_every > 0 && done % ls.eval_every == 0) || (ls.eval_every == 0 && epoch_end)) {
      broadcast_buffers(parts);
      result.final_eval = run_eval(task, done, logs);
    }
    // A stop signal ends the run here, on every rank at the same step.
    result.signal = done < ls.stop ? agreed_signal(*parts.world) : 0;
    bool periodic = ls.ckpt_every > 0 && (done % ls.ckpt_every == 0 || done == ls.total);
    if (periodic || (ls.stop < ls.total && done == ls.stop) || result.signal != 0) {
      // After the eval: the state saved is the state the next step starts from.
      broadcast_buffers(parts);
      saver.save(parts, done, done / ls.per_epoch);
    }
    result.steps = done;
    if (result.signal != 0) break;
  }
  saver.finish();
  result.steps = std::max(start, result.steps);
  result.stopped = result.steps < ls.total;
  if (start < result.steps && !result.stopped &&
      (result.final_eval.is_null() || (ls.eval_every > 0 && ls.total % ls.eval_every != 0))) {
    broadcast_buffers(parts);
    result.final_eval = run_eval(task, ls.total, logs);
  }
  write_trace(parts, cfg, env);
  result.seconds = std::chrono::duration<double>(Clock::now() - prog.start).count();
  return result;
}

}  // namespace strata::launch
