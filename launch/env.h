// Where this process sits in the job: rank, world size and local rank, read from the
// launcher's environment. This is the only place in strata that reads the environment.
#pragma once

#include <string>

namespace strata::launch {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;               // ranks on this node
  std::string launcher = "single";  // "openmpi", "slurm" or "single"
};

/// OpenMPI's OMPI_COMM_WORLD_* first (inside a Slurm allocation mpirun sets them while
/// SLURM_PROCID stays 0), then Slurm's SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID (srun), then a
/// single process. Inconsistent values are an Error naming the variables.
LaunchEnv detect_launch_env();

/// The number of CPU threads this process should use: `requested` if > 0, else the cores
/// available divided among the ranks sharing this node.
int cpu_threads(int requested, const LaunchEnv& env);

}  // namespace strata::launch
