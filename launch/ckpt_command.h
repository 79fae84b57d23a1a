// `strata ckpt inspect|verify|export|diff`: look into checkpoints without training.
#pragma once

#include <string>
#include <vector>

namespace strata::launch {

/// Prints step, epoch, layout, the part files and every dataset's name, dtype, shape and size
/// (a part's as parts/rank<R>/...). A folder lists its checkpoints and `latest` first, then
/// inspects the newest.
int ckpt_inspect(const std::string& path);

/// Reads every checkpoint named (files, or every ckpt-<step>.h5 of a folder) and verifies
/// format, version, completeness and checksums; prints one line per file. Returns 0 when all
/// verify, 1 otherwise (each failure printed with its reason). A checkpoint's part files are
/// verified with it: a missing or damaged part fails it.
int ckpt_verify(const std::vector<std::string>& paths);

/// Writes `out`, a plain HDF5 file of name -> array that any tool reads: the model's tensors
/// at the root by dotted name ("conv1.weight"), bf16/f16 widened to f32; with `all`, also the
/// optimizer state (full tensors by parameter name, ZeRO slices assembled: optimizer/<param>/
/// <slot>), every rank's rng and sampler (rank<N>/ below the group) and extra.
int ckpt_export(const std::string& path, const std::string& out, bool all);

/// Compares the training state of two checkpoints bit for bit (files or folders: their
/// newest): step, model, optimizer, every rank's random streams and samplers, extra and the
/// loss scaler; the config and layout are not compared. Prints each difference (a tensor's
/// largest absolute difference) and returns 0 when they are identical, 1 otherwise.
int ckpt_diff(const std::string& a, const std::string& b);

}  // namespace strata::launch
