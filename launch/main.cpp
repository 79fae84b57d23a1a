// The `strata` command: `strata train --config FILE [--set key=value ...]`.
#include <cblas.h>
#include <omp.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "launch/config.h"
#include "launch/env.h"
#include "launch/recipes.h"

namespace {

using strata::launch::Json;

/// Threads policy: OpenMP loops and OpenBLAS share one pool of `n` threads (OpenBLAS's
/// OpenMP build), so they never run at the same time or oversubscribe the cores.
void set_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int run_train(const std::string& config_path, const std::vector<std::string>& overrides) {
  namespace launch = strata::launch;
  launch::LaunchEnv env = launch::detect_launch_env();
  Json cfg = launch::resolve_config(config_path, overrides);
  strata::check(env.world_size == 1, "[launch] ", env.world_size, " ranks were started by ",
                env.launcher, ", but data parallelism is not built yet; run one process");
  int threads = launch::cpu_threads(static_cast<int>(cfg["threads"].get<int64_t>()), env);
  set_threads(threads);
  std::string run_dir = cfg["run_dir"].get<std::string>();
  std::filesystem::create_directories(run_dir);
  if (env.rank == 0) {
    std::ofstream(std::filesystem::path(run_dir) / "config.json") << cfg.dump(2) << '\n';
    std::printf("strata train: resolved config (saved to %s/config.json)\n%s\n", run_dir.c_str(),
                cfg.dump(2).c_str());
    std::printf("threads: %d (OpenMP and OpenBLAS share them)\n", threads);
  }
  launch::TrainParts parts = launch::build_training(cfg, env);
  launch::TrainResult r = launch::train(parts, cfg, env);
  if (env.rank == 0) {
    std::printf("done: %lld steps in %.1f s, final eval %s\n", static_cast<long long>(r.steps),
                r.seconds, r.final_eval.dump().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata: distributed deep-learning training"};
  app.require_subcommand(1);
  std::string config;
  std::vector<std::string> overrides;
  CLI::App* train = app.add_subcommand("train", "train a model from a JSON config");
  train->add_option("--config", config, "JSON config file")->required()->check(CLI::ExistingFile);
  train->add_option("--set", overrides, "override a config value: key.sub=value (repeatable)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (train->parsed()) return run_train(config, overrides);
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}
