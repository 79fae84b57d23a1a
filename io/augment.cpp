// Crop-and-flip augmentation from counter-based Philox draws, and normalised image batches.
#include "io/augment.h"

#include <cstring>

#include "core/error.h"
#include "core/random.h"

namespace strata::io {
namespace {

// The Philox stream of augmentation draws: apart from the weight-init and data-order streams
// that use the same seed (those use stream 0).
constexpr uint64_t kAugmentStream = uint64_t{0xA6} << 40;

/// Per-channel values from one value (every channel) or one per channel.
std::vector<double> per_channel(const std::vector<double>& v, int64_t c, const char* what) {
  check(v.size() == 1 || static_cast<int64_t>(v.size()) == c, "[data] data.", what, " has ",
        v.size(), " values for images with ", c, " channels; give one value or one per channel");
  std::vector<double> out(static_cast<size_t>(c));
  for (int64_t i = 0; i < c; ++i) out[i] = v[v.size() == 1 ? 0 : i];
  return out;
}

}  // namespace

CropFlip draw_crop_flip(uint64_t seed, int64_t epoch, int64_t index, int64_t pad, bool flip) {
  auto r =
      philox4x32(seed, static_cast<uint64_t>(index), kAugmentStream + static_cast<uint64_t>(epoch));
  auto span = static_cast<uint32_t>(2 * pad + 1);
  CropFlip cf;
  cf.dy = static_cast<int64_t>(r[0] % span) - pad;
  cf.dx = static_cast<int64_t>(r[1] % span) - pad;
  cf.flip = flip && (r[2] & 1u) != 0;
  return cf;
}

void apply_crop_flip(const uint8_t* src, uint8_t* dst, int64_t c, int64_t h, int64_t w,
                     const CropFlip& cf) {
  std::memset(dst, 0, static_cast<size_t>(c * h * w));
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      int64_t sy = y + cf.dy;
      if (sy < 0 || sy >= h) continue;
      const uint8_t* srow = src + (ch * h + sy) * w;
      uint8_t* drow = dst + (ch * h + y) * w;
      for (int64_t x = 0; x < w; ++x) {
        int64_t sx = x + cf.dx;  // position in the cropped (unflipped) window
        if (sx >= 0 && sx < w) drow[cf.flip ? w - 1 - x : x] = srow[sx];
      }
    }
  }
}

std::pair<Tensor, Tensor> transform_batch(const ImageSet& set, const std::vector<int64_t>& idx,
                                          const ImageTransform& t, int64_t epoch) {
  const Tensor& images = set.images;
  check(images.dim() == 4, "[data] expected images (N, C, H, W), got ", images.desc());
  int64_t n = static_cast<int64_t>(idx.size()), total = images.size(0);
  int64_t c = images.size(1), h = images.size(2), w = images.size(3), per = c * h * w;
  std::vector<double> mean = per_channel(t.mean, c, "mean"), std = per_channel(t.std, c, "std");
  // x * scale - shift = (x / 255 - mean) / std, the constants rounded once from double.
  std::vector<float> scale(static_cast<size_t>(c)), shift(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    check(std[ch] > 0, "[data] data.std must be positive, got ", std[ch]);
    scale[ch] = static_cast<float>(1.0 / (255.0 * std[ch]));
    shift[ch] = static_cast<float>(mean[ch] / std[ch]);
  }
  for (int64_t i : idx) {
    check(i >= 0 && i < total, "[data] sample index ", i, " out of range for ", total, " samples");
  }
  check(!t.augment || (t.pad >= 0 && t.pad < h && t.pad < w), "[data] crop padding ", t.pad,
        " must be in [0, image size) for ", h, "x", w, " images");
  Tensor x = empty({n, c, h, w}, DType::f32), y = empty({n}, DType::i64);
  const uint8_t* src = images.data<uint8_t>();
  const int64_t* lab = set.labels.data<int64_t>();
  float* dst = x.data<float>();
  int64_t* yd = y.data<int64_t>();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    std::vector<uint8_t> crop;
    const uint8_t* s = src + idx[b] * per;
    if (t.augment) {
      crop.resize(static_cast<size_t>(per));
      apply_crop_flip(s, crop.data(), c, h, w,
                      draw_crop_flip(t.seed, epoch, idx[b], t.pad, t.flip));
      s = crop.data();
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      float* d = dst + b * per + ch * h * w;
      const uint8_t* sc = s + ch * h * w;
      for (int64_t j = 0; j < h * w; ++j) d[j] = static_cast<float>(sc[j]) * scale[ch] - shift[ch];
    }
    yd[b] = lab[idx[b]];
  }
  return {x, y};
}

}  // namespace strata::io
