// Builds model, data, optimizer and schedule from the resolved config.
#include "launch/recipes.h"

#include <algorithm>

#include "core/optim/adagrad.h"
#include "core/optim/adam.h"
#include "core/optim/rmsprop.h"
#include "core/optim/schedule.h"
#include "core/optim/sgd.h"
#include "launch/device.h"
#include "launch/tasks.h"

namespace strata::launch {
namespace {

/// The configured optimizer over `groups` (one group: the model, or this rank's ZeRO shards).
std::unique_ptr<optim::Optimizer> make_optimizer(const Json& cfg,
                                                 std::vector<optim::ParamGroup> groups) {
  std::string name = get<std::string>(cfg, "optim.name");
  double lr = get<double>(cfg, "optim.lr"), wd = get<double>(cfg, "optim.weight_decay");
  double momentum = get<double>(cfg, "optim.momentum"), eps = get<double>(cfg, "optim.eps");
  check(lr > 0, "[config] optim.lr must be positive, got ", lr);
  auto betas = cfg["optim"]["betas"].get<std::vector<double>>();
  if (name == "sgd") {
    return std::make_unique<optim::SGD>(
        std::move(groups), optim::SGDOptions{.lr = lr,
                                             .momentum = momentum,
                                             .nesterov = get<bool>(cfg, "optim.nesterov"),
                                             .weight_decay = wd});
  }
  if (name == "adam" || name == "adamw") {
    optim::AdamWOptions o;
    o.lr = lr;
    o.beta1 = betas[0];
    o.beta2 = betas[1];
    o.eps = eps;
    o.weight_decay = wd;
    if (name == "adamw") return std::make_unique<optim::AdamW>(std::move(groups), o);
    return std::make_unique<optim::Adam>(std::move(groups), o);
  }
  if (name == "adagrad") {
    return std::make_unique<optim::Adagrad>(
        std::move(groups), optim::AdagradOptions{.lr = lr, .weight_decay = wd, .eps = eps});
  }
  if (name == "rmsprop") {
    return std::make_unique<optim::RMSprop>(
        std::move(groups),
        optim::RMSpropOptions{.lr = lr, .eps = eps, .weight_decay = wd, .momentum = momentum});
  }
  if (name == "lars") {
    return std::make_unique<optim::LARS>(
        std::move(groups), optim::LARSOptions{.lr = lr, .momentum = momentum, .weight_decay = wd});
  }
  throw Error(str_cat("[config] optim.name: unknown optimizer '", name,
                      "'; choose sgd, adam, adamw, adagrad, rmsprop or lars"));
}

optim::SchedulePtr make_schedule(const Json& cfg, int64_t total) {
  const Json& s = cfg["schedule"];
  std::string name = s["name"].get<std::string>();
  int64_t warmup = s["warmup_steps"].get<int64_t>();
  check(warmup >= 0 && warmup < total, "[config] schedule.warmup_steps must be in [0, ", total,
        "), got ", warmup);
  int64_t rest = total - warmup;
  optim::SchedulePtr main;
  if (name == "constant") {
    main = optim::constant_lr();
  } else if (name == "step") {
    main = optim::step_lr(s["step_size"].get<int64_t>(), s["gamma"].get<double>());
  } else if (name == "multistep") {
    main =
        optim::multistep_lr(s["milestones"].get<std::vector<int64_t>>(), s["gamma"].get<double>());
  } else if (name == "exponential") {
    main = optim::exponential_lr(s["gamma"].get<double>());
  } else if (name == "polynomial") {
    main = optim::polynomial_lr(rest, s["power"].get<double>());
  } else if (name == "cosine") {
    main = optim::cosine_lr(rest, s["min_lr"].get<double>());
  } else if (name == "cyclic") {
    std::string mode = s["mode"].get<std::string>();
    optim::CyclicMode m = mode == "triangular2" ? optim::CyclicMode::triangular2
                          : mode == "exp_range" ? optim::CyclicMode::exp_range
                                                : optim::CyclicMode::triangular;
    check(mode == "triangular" || mode == "triangular2" || mode == "exp_range",
          "[config] schedule.mode: unknown cyclic mode '", mode,
          "'; choose triangular, triangular2 or exp_range");
    main = optim::cyclic_lr(s["max_lr"].get<double>(), s["step_size_up"].get<int64_t>(), -1, m,
                            s["gamma"].get<double>());
  } else if (name == "onecycle") {
    main = optim::one_cycle_lr(rest);
  } else {
    throw Error(str_cat("[config] schedule.name: unknown schedule '", name,
                        "'; choose constant, step, multistep, exponential, polynomial, cosine, "
                        "cyclic or onecycle"));
  }
  if (warmup == 0) return main;
  return optim::linear_warmup(warmup, s["warmup_start_factor"].get<double>(), main);
}

}  // namespace

namespace {

/// Finds the tied weights of a pipelined task; on the last stage they are copies, left out of
/// the optimizer (the owner's update is broadcast to them after each step).
void collect_parameters(TrainParts& parts) {
  std::vector<std::string> tied = parts.task->tied_weights();
  if (parts.mesh.last_stage() && !parts.mesh.first_stage()) {
    parts.tied_copies.insert(tied.begin(), tied.end());
  }
  for (auto& [name, p] : parts.task->model().named_parameters()) {
    if (std::find(tied.begin(), tied.end(), name) != tied.end() && parts.mesh.tie) {
      parts.tied.push_back(p);
    }
    if (p.requires_grad() && !parts.tied_copies.count(name)) parts.params.push_back(p);
  }
  check(parts.tied.size() == (parts.mesh.tie ? tied.size() : 0),
        "[pipeline] a tied weight is missing on stage ", parts.mesh.stage);
}

/// The executor running this stage's model chunks (chunk c is virtual stage c * pp + stage),
/// with parallel.recompute and the trace's compute and wait spans.
std::unique_ptr<dist::pipeline::PipelineExecutor> make_pipeline(TrainParts& parts, bool recompute) {
  const Mesh& mesh = parts.mesh;
  std::vector<dist::pipeline::ChunkFn> chunks;
  dist::pipeline::ExecutorOptions options{
      .recompute = recompute, .generators = {}, .timeline = parts.timeline};
  for (int64_t c = 0; c < mesh.schedule.virtual_stages; ++c) {
    int64_t vs = c * mesh.pp + mesh.stage;
    chunks.push_back([task = parts.task.get(), vs](const Tensor& input, int64_t microbatch) {
      return task->pipeline_stage(vs, input, microbatch);
    });
    options.generators.push_back(parts.task->pipeline_stage_generators(vs));
  }
  return std::make_unique<dist::pipeline::PipelineExecutor>(*mesh.pipe, mesh.schedule,
                                                            std::move(chunks), options);
}

}  // namespace

TrainParts build_training(const Json& cfg, const LaunchEnv& env,
                          std::shared_ptr<dist::Communicator> comm) {
  Device device = training_device(cfg, env);
  // Refused before any data is read: LARS has no CUDA kernel.
  check(!device.is_cuda() || get<std::string>(cfg, "optim.name") != "lars",
        "[config] optim.name: lars has no CUDA kernel yet; use sgd, adam or adamw with device: ",
        get<std::string>(cfg, "device"), ", or device: cpu");
  TrainParts parts;
  parts.mesh = make_mesh(cfg, env, std::move(comm), device);
  parts.world = parts.mesh.world;
  parts.comm = parts.mesh.dp_group;
  parts.pipe = parts.mesh.pipe;
  std::string task = get<std::string>(cfg, "task");
  parts.task =
      task == "char_lm" ? make_char_lm_task(cfg, parts.mesh) : make_classify_task(cfg, parts.mesh);
  check(!parts.mesh.pipelined() || parts.task->supports_pipeline(),
        "[config] parallel.pp = ", parts.mesh.pp, ": task '", task,
        "' cannot be split into pipeline stages; use task char_lm (a GPT) or parallel.pp=1");
  collect_parameters(parts);
  std::vector<optim::ParamGroup> groups{{.params = parts.params}};
  if (get<bool>(cfg, "parallel.zero")) {
    parts.zero = std::make_unique<dist::ZeroOptimizer>(
        std::move(groups), parts.comm, [&cfg](std::vector<optim::ParamGroup> shards) {
          return make_optimizer(cfg, std::move(shards));
        });
  } else {
    parts.dp = std::make_unique<dist::DataParallel>(parts.task->model(), parts.comm);
    parts.optimizer = make_optimizer(cfg, std::move(groups));
  }
  if (!get<std::string>(cfg, "trace.path").empty()) {
    parts.timeline = std::make_shared<dist::Timeline>(parts.world->rank());
    if (parts.dp) parts.dp->set_timeline(parts.timeline);
  }
  bool recompute = get<bool>(cfg, "parallel.recompute");
  check(!recompute || parts.mesh.pipelined(),
        "[config] parallel.recompute works per pipeline stage; set parallel.pp > 1 or leave it "
        "off");
  if (parts.mesh.pipelined()) parts.pipeline = make_pipeline(parts, recompute);
  double base = get<double>(cfg, "optim.lr");
  optim::SchedulePtr schedule = make_schedule(cfg, total_steps(cfg, *parts.task));
  parts.lr_at = [schedule, base](int64_t step) { return schedule->lr_at(step, base); };
  return parts;
}

}  // namespace strata::launch
