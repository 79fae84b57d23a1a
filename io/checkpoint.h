// Checkpoints: everything a run needs to continue, as self-describing HDF5 files: a main file
// and the part files of the ranks that own sharded state (docs/checkpoint-format.md). Every
// dataset carries a CRC-32 that is verified on load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/random.h"
#include "core/tensor.h"
#include "io/sampler.h"

namespace strata::io {

inline constexpr const char* kCheckpointFormat = "strata-checkpoint";
inline constexpr int64_t kCheckpointVersion = 2;
/// The oldest version read: version 1 keyed optimizer state by "<group>.<index>.<slot>".
inline constexpr int64_t kCheckpointOldestVersion = 1;

/// One rank's random streams and sampler positions (samplers keep a cursor per shard, and a
/// pipeline stage holds the dropout streams of its own blocks).
struct RankStreams {
  std::map<std::string, Generator::State> rng;
  std::map<std::string, Sampler::State> samplers;
};

/// Elements [offset, offset + values.numel()) of a tensor of `shape` flattened in row-major
/// order: a ZeRO-1 rank's piece of a parameter's optimizer state (its shard may cut it).
struct TensorSlice {
  Shape shape;
  int64_t offset = 0;
  Tensor values;  // (n) 1-D
};

/// A part file of a checkpoint: the state rank `rank` owns, written by that rank.
struct PartRef {
  int64_t rank = 0;
  std::string file;  // its name in the checkpoint's folder, e.g. "ckpt-10.part1.h5"
  bool operator==(const PartRef&) const = default;
};

/// train.amp = fp16: the dynamic loss scaler (optim::LossScaler::State) and the steps it
/// skipped; the amp/ group of the main file, absent in other runs' files.
struct AmpState {
  double scale = 0;
  int64_t growth_tracker = 0;
  int64_t skipped_steps = 0;
  bool operator==(const AmpState&) const = default;
};

/// The state of a run at a step boundary. Tensors may be live views (a synchronous save) or
/// host copies (a snapshot); reads always return fresh host tensors.
struct Checkpoint {
  int64_t step = 0;   // optimizer steps done; the schedule's state (lr_at is pure in the step)
  int64_t epoch = 0;  // completed passes over the training data
  nlohmann::json config = nlohmann::json::object();  // the resolved run configuration
  nlohmann::json layout = nlohmann::json::object();  // world size and parallel layout
  std::map<std::string, Tensor> model;               // parameters and buffers by dotted name
  // Optimizer state by parameter name: "<param>/<slot>" ("fc.weight/exp_avg") and "step".
  // (Version-1 files, read back: Optimizer::state_dict()'s "<group>.<index>.<slot>" keys.)
  std::map<std::string, Tensor> optimizer;
  // ZeRO-1: this writer's pieces of "<param>/<slot>" tensors. A read assembles every file's
  // pieces into `optimizer`, so it is empty after read_checkpoint.
  std::map<std::string, TensorSlice> optimizer_slices;
  std::map<std::string, Generator::State> rng;     // rank 0's random streams by name
  std::map<std::string, Sampler::State> samplers;  // rank 0's samplers by name
  // Ranks 1, 2, ... of a data-parallel run (rng/rank<N>/ and sampler/rank<N>/ in the file);
  // empty for one process and in files written before per-rank streams.
  std::vector<RankStreams> other_ranks;
  std::map<std::string, Tensor> extra;  // a hook for more state (e.g. a MoCo queue)
  std::optional<AmpState> amp;          // main file only: fp16 runs' loss scaler
  // Which file of a save this is: the main file (part_rank 0) lists the `parts`; rank R's
  // part file (part_rank R > 0) holds what rank R owns. `token` ties the files of one save.
  int64_t part_rank = 0;
  std::string token;
  std::vector<PartRef> parts;
  int64_t version = kCheckpointVersion;  // of the file read (written files: always current)
};

/// One dataset of a checkpoint file, as `inspect` lists it.
struct CheckpointEntry {
  // Full HDF5 name as h5py sees it from the main file, e.g. "model/blocks.0.attn.qkv.weight";
  // a part's datasets through the main file's external links: "parts/rank1/optimizer_slice/...".
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  int64_t bytes = 0;
};

/// A checkpoint's metadata and table of contents, read without the tensor data.
struct CheckpointInfo {
  std::string path;
  int64_t version = 0, step = 0, epoch = 0;
  nlohmann::json config, layout;
  std::vector<PartRef> parts;
  std::vector<CheckpointEntry> entries;  // the main file's, then each part's
};

/// CRC-32 (IEEE 802.3, zlib's and Python's zlib.crc32), continuing from `crc`.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

/// Writes `ckpt` to `path` (replacing it): a main file (with an external link
/// parts/rank<R> to each part, resolved beside it) or, with part_rank > 0, a part file. Not
/// atomic by itself: CheckpointDir commits.
void write_checkpoint(const std::string& path, const Checkpoint& ckpt);

/// Reads the main file `path` and its parts (found beside it), verifying format, version,
/// completeness, the parts' step and token and every checksum, and assembles sliced optimizer
/// state. Errors start with "[checkpoint]" and name the file and, where one is at fault, the
/// dataset.
Checkpoint read_checkpoint(const std::string& path);

/// Metadata and the list of datasets of a main file and its parts, checking format and
/// version but not the data.
CheckpointInfo inspect_checkpoint(const std::string& path);

/// The name of rank `rank`'s part file of the checkpoint of `step`: "ckpt-<step>.part<rank>.h5".
std::string part_file_name(int64_t step, int64_t rank);

}  // namespace strata::io
