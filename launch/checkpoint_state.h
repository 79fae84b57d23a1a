// What each rank of a run puts into a checkpoint and takes back from one: ownership of the
// model, optimizer (by parameter name; ZeRO-1 shards as slices) and random-stream state over
// the mesh of pipeline stages x data-parallel replicas.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "launch/trainer.h"

namespace strata::launch {

/// This rank's place in the mesh (world rank = stage * dp + dp rank).
struct MeshPlace {
  std::shared_ptr<dist::Communicator> world;
  int rank = 0, world_size = 1, dp_rank = 0, dp = 1, stage = 0, pp = 1;
};
MeshPlace mesh_place(const TrainParts& parts);

/// The world ranks > 0 that write a part file: with parallel.zero every rank (its optimizer
/// shard), else the first dp rank of every stage but the first.
std::vector<int64_t> part_ranks(int world_size, int dp, bool zero);

/// This rank's share of a checkpoint of `parts` after `step` steps: the main file (world rank
/// 0), a part file (part_rank = world rank), or nullopt when the rank owns nothing. Tensors are
/// the live state: write or snapshot them before the next step. A collective over the world
/// (the save's token is broadcast) and the data-parallel group (its streams are gathered).
std::optional<io::Checkpoint> capture_checkpoint(TrainParts& parts, const Json& cfg,
                                                 const LaunchEnv& env, int64_t step, int64_t epoch);

/// Loads what this rank needs from `ckpt` (a whole checkpoint, parts merged) into `parts`, by
/// name: its stage's model tensors, its parameters' optimizer state (its shard under ZeRO, from
/// any dp size or partition), its random streams and sampler positions (docs/
/// checkpoint-format.md, "Resuming on another layout"). Errors start with "[resume]" and name
/// the key.
void restore_checkpoint(TrainParts& parts, const io::Checkpoint& ckpt);

/// The names of the optimizer's parameters in its group order (ZeRO: the full parameters).
std::vector<std::string> optimizer_param_names(const TrainParts& parts);

}  // namespace strata::launch
