// Checkpoints: everything a run needs to continue, as one self-describing HDF5 file
// (docs/checkpoint-format.md). Every dataset carries a CRC-32 that is verified on load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/random.h"
#include "core/tensor.h"
#include "io/sampler.h"

namespace strata::io {

inline constexpr const char* kCheckpointFormat = "strata-checkpoint";
inline constexpr int64_t kCheckpointVersion = 1;

/// One data-parallel rank's random streams and sampler positions (they differ by rank: the
/// char LM's batch stream is seeded with the rank, and each rank has its own shard cursor).
struct RankStreams {
  std::map<std::string, Generator::State> rng;
  std::map<std::string, Sampler::State> samplers;
};

/// The state of a run at a step boundary. Tensors may be live views (a synchronous save) or
/// host copies (a snapshot); reads always return fresh host tensors.
struct Checkpoint {
  int64_t step = 0;   // optimizer steps done; the schedule's state (lr_at is pure in the step)
  int64_t epoch = 0;  // completed passes over the training data
  nlohmann::json config = nlohmann::json::object();  // the resolved run configuration
  nlohmann::json layout = nlohmann::json::object();  // world size and parallel layout
  std::map<std::string, Tensor> model;               // parameters and buffers by dotted name
  std::map<std::string, Tensor> optimizer;      // Optimizer::state_dict() ("0.3.exp_avg", "step")
  std::map<std::string, Generator::State> rng;  // rank 0's random streams by name
  std::map<std::string, Sampler::State> samplers;  // rank 0's samplers by name
  // Ranks 1, 2, ... of a data-parallel run (rng/rank<N>/ and sampler/rank<N>/ in the file);
  // empty for one process and in files written before per-rank streams.
  std::vector<RankStreams> other_ranks;
  std::map<std::string, Tensor> extra;  // a hook for more state (e.g. a MoCo queue)
};

/// One dataset of a checkpoint file, as `inspect` lists it.
struct CheckpointEntry {
  std::string name;  // full HDF5 name, e.g. "model/blocks.0.attn.qkv.weight"
  DType dtype = DType::f32;
  Shape shape;
  int64_t bytes = 0;
};

/// A checkpoint's metadata and table of contents, read without the tensor data.
struct CheckpointInfo {
  std::string path;
  int64_t version = 0, step = 0, epoch = 0;
  nlohmann::json config, layout;
  std::vector<CheckpointEntry> entries;
};

/// CRC-32 (IEEE 802.3, zlib's and Python's zlib.crc32), continuing from `crc`.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

/// Writes `ckpt` to `path` (replacing it). Not atomic by itself: CheckpointDir commits.
void write_checkpoint(const std::string& path, const Checkpoint& ckpt);

/// Reads `path`, verifying format, version, completeness and every checksum. Errors start
/// with "[checkpoint]" and name the file and, where one is at fault, the dataset.
Checkpoint read_checkpoint(const std::string& path);

/// Metadata and the list of datasets, checking format and version but not the data.
CheckpointInfo inspect_checkpoint(const std::string& path);

}  // namespace strata::io
