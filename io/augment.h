// Image batches with the CIFAR training augmentation (random crop with zero padding and
// horizontal flip, as torchvision's recipe) and per-channel normalisation. The random draws
// are keyed by (seed, epoch, dataset index), so a sample is augmented the same way whatever
// rank or data-parallel size loads it.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "io/datasets.h"

namespace strata::io {

struct ImageTransform {
  std::vector<double> mean;  // per channel, or one value for every channel
  std::vector<double> std;   // likewise; all positive
  bool augment = false;      // random crop and flip (training only)
  int64_t pad = 4;           // crop offsets are drawn from [-pad, pad] in each direction
  bool flip = true;          // mirror left-right with probability 1/2
  uint64_t seed = 0;
};

/// One sample's augmentation: the crop window starts at (dy, dx) relative to the image
/// (pixels outside are zero) and the result is mirrored when `flip`.
struct CropFlip {
  int64_t dy = 0, dx = 0;
  bool flip = false;
};

/// The augmentation of dataset sample `index` in `epoch`: a pure function of its arguments.
CropFlip draw_crop_flip(uint64_t seed, int64_t epoch, int64_t index, int64_t pad, bool flip);

/// Applies `cf` to one (C, H, W) u8 image into dst (C, H, W), zero outside the source.
void apply_crop_flip(const uint8_t* src, uint8_t* dst, int64_t c, int64_t h, int64_t w,
                     const CropFlip& cf);

/// Gathers samples `idx` as f32 (B, C, H, W): augmented when t.augment (draws keyed by
/// `epoch` and each sample's index), scaled to [0, 1], then (x - mean[c]) / std[c]; and the
/// labels (B) i64.
std::pair<Tensor, Tensor> transform_batch(const ImageSet& set, const std::vector<int64_t>& idx,
                                          const ImageTransform& t, int64_t epoch);

}  // namespace strata::io
