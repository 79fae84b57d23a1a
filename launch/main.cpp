// The `strata` command: `strata train --config FILE [--set key=value ...] [--resume MODE]`
// and `strata ckpt inspect|verify|export|diff`.
#include <cblas.h>
#include <omp.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "distributed/mpi_communicator.h"
#include "launch/checkpointing.h"
#include "launch/ckpt_command.h"
#include "launch/config.h"
#include "launch/device.h"
#include "launch/env.h"
#include "launch/recipes.h"
#include "launch/signals.h"

namespace {

using strata::launch::Json;

/// Threads policy: OpenMP loops and OpenBLAS share one pool of `n` threads (OpenBLAS's
/// OpenMP build), so they never run at the same time or oversubscribe the cores.
void set_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int run_train(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& resume) {
  namespace launch = strata::launch;
  launch::LaunchEnv env = launch::detect_launch_env();
  Json cfg = launch::resolve_config(config_path, overrides);
  // Before any output or MPI start-up: a missing GPU is one message (exit code 1).
  launch::training_device(cfg, env);
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
  // MPI only when a launcher started several ranks; one process needs no runtime.
  std::unique_ptr<strata::dist::MpiRuntime> mpi;
  std::shared_ptr<strata::dist::Communicator> comm = strata::dist::make_single_communicator();
  if (env.world_size > 1) {
    // OpenMPI's default non-blocking all-reduce reaches about half the bandwidth of the ring
    // algorithm on these machines (bench/dp_bench); a user's own setting wins.
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
    mpi = std::make_unique<strata::dist::MpiRuntime>();
    comm = mpi->world();
    strata::check(comm->size() == env.world_size && comm->rank() == env.rank,
                  "[launch] MPI "
                  "reports rank ",
                  comm->rank(), " of ", comm->size(), " but ", env.launcher, " set rank ", env.rank,
                  " of ", env.world_size);
  }
  launch::TrainParts parts = launch::build_training(cfg, env, comm);
  launch::install_stop_signals();
  std::optional<strata::io::Checkpoint> ckpt = launch::find_resume(resume, cfg, env.rank == 0);
  launch::TrainResult r = launch::train(parts, cfg, env, ckpt ? &*ckpt : nullptr);
  if (r.signal != 0) {
    if (env.rank == 0) {
      std::printf(
          "preempted by signal %d: checkpointed after step %lld; exiting with code %d, "
          "continue with --resume auto\n",
          r.signal, static_cast<long long>(r.steps), launch::kPreemptedExitCode);
    }
    return launch::kPreemptedExitCode;
  }
  if (env.rank == 0 && r.stopped) {
    std::printf("stopped after step %lld (train.stop_at_step); continue with --resume auto\n",
                static_cast<long long>(r.steps));
  } else if (env.rank == 0 && r.final_eval.is_null()) {
    std::printf("done: the checkpoint is at step %lld, the end of training; nothing to do\n",
                static_cast<long long>(r.steps));
  } else if (env.rank == 0) {
    std::printf("done: %lld steps in %.1f s, final eval %s\n", static_cast<long long>(r.steps),
                r.seconds, r.final_eval.dump().c_str());
  }
  return 0;
}

/// `strata ckpt ...`: its arguments and how to run it once parsed.
struct CkptCli {
  CLI::App *inspect = nullptr, *verify = nullptr, *exporter = nullptr, *diff = nullptr;
  std::string path, out, other;
  std::vector<std::string> paths;
  bool all = false;

  void add(CLI::App& app) {
    CLI::App* ckpt = app.add_subcommand("ckpt", "inspect, verify or export checkpoints");
    ckpt->require_subcommand(1);
    inspect = ckpt->add_subcommand("inspect",
                                   "list step, layout and every tensor's name, "
                                   "dtype and shape (a folder: its newest)");
    inspect->add_option("path", path, "checkpoint file or folder")->required();
    verify = ckpt->add_subcommand("verify", "check format, completeness and every checksum");
    verify->add_option("paths", paths, "checkpoint files or folders")->required();
    exporter = ckpt->add_subcommand("export", "write a plain HDF5 file of name -> array");
    exporter->add_option("path", path, "checkpoint file or folder (its newest)")->required();
    exporter->add_option("out", out, "the HDF5 file to write")->required();
    exporter->add_flag("--all", all, "also the optimizer, rng and sampler state");
    diff = ckpt->add_subcommand("diff",
                                "compare two checkpoints' training state bit for bit "
                                "(exit code 0: identical)");
    diff->add_option("a", path, "checkpoint file or folder (its newest)")->required();
    diff->add_option("b", other, "checkpoint file or folder (its newest)")->required();
  }
  int run() const {
    if (inspect->parsed()) return strata::launch::ckpt_inspect(path);
    if (verify->parsed()) return strata::launch::ckpt_verify(paths);
    if (diff->parsed()) return strata::launch::ckpt_diff(path, other);
    return strata::launch::ckpt_export(path, out, all);
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata: distributed deep-learning training"};
  app.require_subcommand(1);
  std::string config;
  std::vector<std::string> overrides;
  std::string resume = "none";
  CLI::App* train = app.add_subcommand("train", "train a model from a JSON config");
  train->add_option("--config", config, "JSON config file")->required()->check(CLI::ExistingFile);
  train->add_option("--set", overrides, "override a config value: key.sub=value (repeatable)");
  train
      ->add_option("--resume", resume,
                   "auto: the newest valid checkpoint in checkpoint.dir (fresh if there is "
                   "none); PATH: that checkpoint file or folder; none: start fresh")
      ->capture_default_str();
  CkptCli ckpt;
  ckpt.add(app);
  CLI11_PARSE(app, argc, argv);
  try {
    return train->parsed() ? run_train(config, overrides, resume) : ckpt.run();
  } catch (const strata::launch::DeviceUnavailable& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;  // the machine lacks what the config asks for (a GPU); the config is valid
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  }
}
