// launch/config: defaults, overrides, and errors that name the key.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.h"
#include "launch/config.h"
#include "launch/env.h"

namespace strata::launch {
namespace {

std::string error_of(const Json& user, const std::vector<std::string>& sets = {}) {
  try {
    resolve_config_json(user, sets);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Config, DefaultsAreFilledAndOverridesApply) {
  Json cfg = resolve_config_json(Json{{"train", {{"epochs", 3}}}},
                                 {"optim.lr=0.01", "model.activation=relu", "run_dir=/tmp/x"});
  EXPECT_EQ(cfg["train"]["epochs"], 3);
  EXPECT_EQ(cfg["train"]["batch_size"], 64);
  EXPECT_DOUBLE_EQ(cfg["optim"]["lr"].get<double>(), 0.01);
  EXPECT_EQ(cfg["run_dir"], "/tmp/x");
  EXPECT_EQ(cfg["model"]["name"], "lenet5");
  Json lm = resolve_config_json(Json{{"task", "char_lm"}}, {"model.n_layer=2"});
  EXPECT_EQ(lm["model"]["name"], "gpt");
  EXPECT_EQ(lm["model"]["n_layer"], 2);
  // An integer is accepted where a float is expected, and stored as a float.
  Json f = resolve_config_json(Json{{"optim", {{"lr", 1}}}}, {});
  EXPECT_TRUE(f["optim"]["lr"].is_number_float());
}

TEST(Config, CheckpointDirDefaultsToTheRunDir) {
  Json cfg = resolve_config_json(Json{{"run_dir", "/tmp/run7"}}, {});
  EXPECT_EQ(cfg["checkpoint"]["dir"], "/tmp/run7/checkpoints");
  EXPECT_EQ(cfg["checkpoint"]["every"], 1000);
  EXPECT_EQ(cfg["checkpoint"]["keep"], 3);
  EXPECT_EQ(resolve_config_json(Json::object(), {"checkpoint.dir=/x"})["checkpoint"]["dir"], "/x");
  EXPECT_EQ(error_of(Json::object(), {"checkpoint.keep=0"}),
            "[config] checkpoint.keep must be >= 1, got 0");
}

TEST(Config, ParallelLogAndTraceKeysDefaultOff) {
  Json cfg = resolve_config_json(Json::object(), {});
  EXPECT_EQ(cfg["parallel"], (Json{{"zero", false},
                                   {"pp", 1},
                                   {"microbatches", 1},
                                   {"schedule", "1f1b"},
                                   {"virtual_stages", 1},
                                   {"balance", Json::array()},
                                   {"recompute", false},
                                   {"sync_bn", false}}));
  EXPECT_EQ(cfg["log"], (Json{{"per_rank", false}}));
  EXPECT_EQ(cfg["trace"], (Json{{"path", ""}}));
  Json on = resolve_config_json(Json{{"parallel", {{"zero", true}}}},
                                {"log.per_rank=true", "trace.path=/tmp/t/run"});
  EXPECT_EQ(on["parallel"]["zero"], true);
  EXPECT_EQ(on["log"]["per_rank"], true);
  EXPECT_EQ(on["trace"]["path"], "/tmp/t/run");
  EXPECT_EQ(error_of(Json::object(), {"parallel.zero=1"}),
            "[config] parallel.zero must be a boolean, got 1");
  EXPECT_EQ(error_of(Json::object(), {"parallel.zero3=true"}),
            "[config] unknown key 'parallel.zero3'; known keys in 'parallel': balance, "
            "microbatches, pp, recompute, schedule, sync_bn, virtual_stages, zero");
  EXPECT_EQ(error_of(Json::object(), {"trace.file=x"}),
            "[config] unknown key 'trace.file'; known keys in 'trace': path");
}

TEST(Config, UnknownKeysAndBadValuesNameTheKey) {
  EXPECT_EQ(error_of(Json{{"train", {{"epoch", 3}}}}),
            "[config] unknown key 'train.epoch'; known keys in 'train': amp, batch_size, epochs, "
            "eval_batch_size, eval_every, grad_clip, log_every, loss_scale, max_steps, "
            "stop_at_step, tf32");
  EXPECT_EQ(error_of(Json{{"trian", 1}}),
            "[config] unknown key 'trian'; known keys: checkpoint, data, device, log, model, "
            "optim, parallel, run_dir, schedule, seed, task, threads, trace, train");
  EXPECT_EQ(error_of(Json{{"train", {{"epochs", "ten"}}}}),
            "[config] train.epochs must be an integer, got \"ten\"");
  EXPECT_EQ(error_of(Json{{"optim", {{"betas", {0.9}}}}}),
            "[config] optim.betas must be a list of 2 items, got [0.9]");
  EXPECT_EQ(error_of(Json::object(), {"train.epochs"}),
            "[config] --set expects key=value, got 'train.epochs'");
  EXPECT_EQ(error_of(Json{{"model", {{"name", "lenet7"}}}}),
            "[config] model.name: unknown model 'lenet7'; choose lenet5, resnet20, resnet32, "
            "resnet44, resnet56 or gpt");
  EXPECT_EQ(error_of(Json{{"task", "detect"}}),
            "[config] task: unknown task 'detect'; choose classify or char_lm");
}

TEST(Config, ResNetsTakeCifarDataDefaults) {
  Json cfg = resolve_config_json(Json{{"model", {{"name", "resnet20"}}}}, {"data.augment=false"});
  EXPECT_EQ(cfg["model"], (Json{{"name", "resnet20"}}));
  EXPECT_EQ(cfg["data"]["format"], "image_folder");
  EXPECT_EQ(cfg["data"]["path"], "data/cifar10");
  EXPECT_EQ(cfg["data"]["mean"], (Json{0.4914, 0.4822, 0.4465}));
  EXPECT_EQ(cfg["data"]["std"], (Json{0.2470, 0.2435, 0.2616}));
  EXPECT_EQ(cfg["data"]["augment"], false);
  EXPECT_EQ(cfg["data"]["eval_samples"], 0);
  Json lenet = resolve_config_json(Json::object(), {});
  EXPECT_EQ(lenet["data"]["format"], "idx");
  EXPECT_EQ(lenet["data"]["augment"], false);
  EXPECT_DOUBLE_EQ(lenet["data"]["mean"].get<double>(), 0.2860);
  EXPECT_EQ(error_of(Json{{"model", {{"name", "resnet20"}}}}, {"data.mean=0.5"}),
            "[config] data.mean must be a list of 3 items, got 0.5");
  EXPECT_EQ(error_of(Json{{"model", {{"name", "resnet32"}}}}, {"data.crop=4"}),
            "[config] unknown key 'data.crop'; known keys in 'data': augment, eval_samples, "
            "format, mean, name, path, std");
  EXPECT_EQ(error_of(Json::object(), {"parallel.sync_bn=1"}),
            "[config] parallel.sync_bn must be a boolean, got 1");
}

TEST(LaunchEnv, ReadsOpenMpiFirstThenSlurm) {
  setenv("SLURM_PROCID", "0", 1);
  setenv("SLURM_NTASKS", "4", 1);
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  LaunchEnv env = detect_launch_env();
  EXPECT_EQ(env.launcher, "openmpi");
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 2);
  EXPECT_EQ(env.local_rank, 1);
  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  env = detect_launch_env();
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.world_size, 4);
  setenv("SLURM_PROCID", "x1", 1);
  EXPECT_THROW(detect_launch_env(), Error);
  unsetenv("SLURM_PROCID");
  unsetenv("SLURM_NTASKS");
  EXPECT_EQ(detect_launch_env().launcher, "single");
  EXPECT_EQ(cpu_threads(3, env), 3);
}

}  // namespace
}  // namespace strata::launch
