// Crop-and-flip augmentation and normalised batches: exact pixels for known draws, draws that
// depend on (seed, epoch, sample index) only, so any rank and dp size sees the same crops.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "io/augment.h"
#include "io/sampler.h"

namespace strata::io {
namespace {

/// n images (n, 3, h, w) with distinct pixel values, labels i % 10.
ImageSet toy_set(int64_t n, int64_t h, int64_t w) {
  ImageSet set;
  set.images = empty({n, 3, h, w}, DType::u8);
  set.labels = empty({n}, DType::i64);
  set.num_classes = 10;
  uint8_t* p = set.images.data<uint8_t>();
  for (int64_t i = 0; i < set.images.numel(); ++i) p[i] = static_cast<uint8_t>((i * 7 + 3) % 251);
  for (int64_t i = 0; i < n; ++i) set.labels.data<int64_t>()[i] = i % 10;
  return set;
}

TEST(Augment, CropFlipMovesPixelsAndPadsWithZero) {
  // One channel, 3 x 4:   1  2  3  4 / 5  6  7  8 / 9 10 11 12
  std::vector<uint8_t> src{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, dst(12);
  // Window shifted one row down and one column left: out(y, x) = src(y + 1, x - 1).
  apply_crop_flip(src.data(), dst.data(), 1, 3, 4, CropFlip{.dy = 1, .dx = -1, .flip = false});
  EXPECT_EQ(dst, (std::vector<uint8_t>{0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0}));
  apply_crop_flip(src.data(), dst.data(), 1, 3, 4, CropFlip{.dy = 1, .dx = -1, .flip = true});
  EXPECT_EQ(dst, (std::vector<uint8_t>{7, 6, 5, 0, 11, 10, 9, 0, 0, 0, 0, 0}));
  apply_crop_flip(src.data(), dst.data(), 1, 3, 4, CropFlip{.dy = 0, .dx = 0, .flip = false});
  EXPECT_EQ(dst, src);
}

TEST(Augment, DrawsDependOnSeedEpochAndIndexOnly) {
  std::set<int64_t> offsets;
  int flips = 0, moved = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    CropFlip a = draw_crop_flip(5, 3, i, 4, true), b = draw_crop_flip(5, 3, i, 4, true);
    EXPECT_TRUE(a.dy == b.dy && a.dx == b.dx && a.flip == b.flip) << i;
    ASSERT_TRUE(a.dy >= -4 && a.dy <= 4 && a.dx >= -4 && a.dx <= 4) << a.dy << " " << a.dx;
    offsets.insert(a.dy);
    offsets.insert(a.dx);
    flips += a.flip;
    CropFlip next = draw_crop_flip(5, 4, i, 4, true), other = draw_crop_flip(6, 3, i, 4, true);
    moved += next.dy != a.dy || next.dx != a.dx;
    moved += other.dy != a.dy || other.dx != a.dx;
  }
  EXPECT_EQ(offsets.size(), 9u);  // every offset in [-4, 4] occurs
  EXPECT_GT(flips, 900);          // about half of 2000 flip
  EXPECT_LT(flips, 1100);
  EXPECT_GT(moved, 3500);  // another epoch or seed gives other crops (8/9 of the time)
  EXPECT_FALSE(draw_crop_flip(5, 3, 0, 4, false).flip);
}

TEST(Augment, SampleIsAugmentedAlikeOnEveryRankAndDpSize) {
  ImageSet set = toy_set(12, 6, 5);
  ImageTransform t{.mean = {0.5}, .std = {0.25}, .augment = true, .pad = 2, .seed = 9};
  // The whole global batch in one process, and the same samples split over 3 ranks.
  Sampler one(12, 9, true, 0, 1);
  std::vector<int64_t> all = one.next(12);
  auto [x, y] = transform_batch(set, all, t, one.epoch());
  int64_t augmented = 0;
  for (int rank = 0; rank < 3; ++rank) {
    Sampler shard(12, 9, true, rank, 3);
    std::vector<int64_t> mine = shard.next(4);
    auto [xr, yr] = transform_batch(set, mine, t, shard.epoch());
    for (size_t k = 0; k < mine.size(); ++k) {
      auto pos = std::find(all.begin(), all.end(), mine[k]) - all.begin();
      EXPECT_EQ(xr.slice(0, k, k + 1).contiguous().to_vector<float>(),
                x.slice(0, pos, pos + 1).contiguous().to_vector<float>())
          << "sample " << mine[k] << " on rank " << rank;
      EXPECT_EQ(yr.data<int64_t>()[k], mine[k] % 10);
    }
  }
  // And the draws did change the images (not the identity for every sample).
  auto [plain, unused] = transform_batch(set, all, ImageTransform{.mean = {0.5}, .std = {0.25}}, 0);
  for (int64_t i = 0; i < 12; ++i) {
    augmented += x.slice(0, i, i + 1).contiguous().to_vector<float>() !=
                 plain.slice(0, i, i + 1).contiguous().to_vector<float>();
  }
  EXPECT_GE(augmented, 9) << "of 12 samples, expected nearly all to be cropped or flipped";
}

TEST(Augment, NormalisesPerChannelAndChecksTheValues) {
  ImageSet set = toy_set(1, 2, 2);
  uint8_t* p = set.images.data<uint8_t>();
  for (int64_t i = 0; i < 12; ++i) p[i] = i < 4 ? 255 : (i < 8 ? 51 : 0);
  ImageTransform t{.mean = {0.5, 0.25, 0.1}, .std = {0.5, 0.25, 0.2}};
  auto [x, y] = transform_batch(set, {0}, t, 0);
  std::vector<float> v = x.to_vector<float>();
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(v[i], 1.0, 1e-6);       // (1 - 0.5) / 0.5
    EXPECT_NEAR(v[4 + i], -0.2, 1e-6);  // (0.2 - 0.25) / 0.25
    EXPECT_NEAR(v[8 + i], -0.5, 1e-6);  // (0 - 0.1) / 0.2
  }
  t.mean = {0.1, 0.2};
  try {
    transform_batch(set, {0}, t, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[data] data.mean has 2 values for images with 3 channels; give one value or one "
                 "per channel");
  }
  try {
    transform_batch(set, {1}, ImageTransform{.mean = {0}, .std = {1}}, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[data] sample index 1 out of range for 1 samples");
  }
}

}  // namespace
}  // namespace strata::io
