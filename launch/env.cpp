// Launcher environment detection.
#include "launch/env.h"

#include <sched.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"

namespace strata::launch {
namespace {

bool read_int(const char* name, int& out) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return false;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  check(end != nullptr && *end == '\0' && x >= 0, "[launch] environment variable ", name, "='", v,
        "' is not a non-negative integer");
  out = static_cast<int>(x);
  return true;
}

}  // namespace

LaunchEnv detect_launch_env() {
  LaunchEnv env;
  if (read_int("OMPI_COMM_WORLD_RANK", env.rank)) {
    env.launcher = "openmpi";
    read_int("OMPI_COMM_WORLD_SIZE", env.world_size);
    read_int("OMPI_COMM_WORLD_LOCAL_RANK", env.local_rank);
    env.local_size = env.world_size;
    read_int("OMPI_COMM_WORLD_LOCAL_SIZE", env.local_size);
  } else if (read_int("SLURM_PROCID", env.rank)) {
    env.launcher = "slurm";
    read_int("SLURM_NTASKS", env.world_size);
    read_int("SLURM_LOCALID", env.local_rank);
    // SLURM_TASKS_PER_NODE has forms like "2(x3)"; assume the worst case: all ranks here.
    env.local_size = env.world_size;
  }
  check(env.world_size >= 1 && env.rank < env.world_size, "[launch] rank ", env.rank,
        " is not below the world size ", env.world_size, " reported by ", env.launcher);
  return env;
}

int cpu_threads(int requested, const LaunchEnv& env) {
  if (requested > 0) return requested;
  cpu_set_t set;
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  // Ranks on one node share its cores.
  return std::max(1, cores / std::max(1, env.local_size));
}

}  // namespace strata::launch
