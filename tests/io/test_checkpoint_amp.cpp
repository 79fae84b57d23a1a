// The amp/ group of a checkpoint (fp16 runs' loss scaler): it round-trips exactly, is absent
// from other runs' files, is listed by inspect, and a damaged group is refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/ops.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "tests/support/values.h"

namespace strata::io {
namespace {

using strata::testing::message_of;
namespace fs = std::filesystem;

std::string temp_file(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / "strata_test_ckpt_amp";
  fs::create_directories(dir);
  return (dir / name).string();
}

Checkpoint small(std::optional<AmpState> amp) {
  Checkpoint c;
  c.step = 5;
  c.model["w"] = ones({2, 2});
  c.amp = amp;
  return c;
}

TEST(CheckpointAmp, TheScalerRoundTrips) {
  std::string path = temp_file("amp.h5");
  AmpState saved{std::ldexp(1.0, 37) * 1.5, 1999, 12};
  write_checkpoint(path, small(saved));
  Checkpoint r = read_checkpoint(path);
  ASSERT_TRUE(r.amp.has_value());
  EXPECT_EQ(*r.amp, saved);
  std::vector<std::string> names;
  for (const CheckpointEntry& e : inspect_checkpoint(path).entries) names.push_back(e.name);
  EXPECT_NE(std::find(names.begin(), names.end(), "amp/scale"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "amp/skipped_steps"), names.end());
}

TEST(CheckpointAmp, AbsentWithoutFp16) {
  std::string path = temp_file("no_amp.h5");
  write_checkpoint(path, small(std::nullopt));
  EXPECT_FALSE(read_checkpoint(path).amp.has_value());
  for (const CheckpointEntry& e : inspect_checkpoint(path).entries) {
    EXPECT_NE(e.name.rfind("amp/", 0), 0u) << e.name;
  }
}

TEST(CheckpointAmp, PartFilesDoNotCarryIt) {
  std::string path = temp_file("part.h5");
  Checkpoint c = small(AmpState{1024, 0, 0});
  c.part_rank = 1;
  write_checkpoint(path, c);
  H5File f(path, H5File::Mode::read);
  nlohmann::json manifest = nlohmann::json::parse(f.read_attribute("datasets"));
  EXPECT_EQ(manifest, nlohmann::json::array({"model/w"}));
}

TEST(CheckpointAmp, AnIncompleteGroupIsRefusedByName) {
  std::string path = temp_file("damaged.h5");
  write_checkpoint(path, small(AmpState{1024, 3, 1}));
  {
    // Drop amp/growth_tracker from the manifest, as a writer of a broken build might.
    H5File f(path, H5File::Mode::append, /*checksummed_metadata=*/true);
    nlohmann::json manifest = nlohmann::json::parse(f.read_attribute("datasets"));
    manifest.erase(std::find(manifest.begin(), manifest.end(), "amp/growth_tracker"));
    f.write_attribute("datasets", manifest.dump());
  }
  EXPECT_EQ(message_of([&] { read_checkpoint(path); }),
            "[checkpoint] " + path +
                ": amp/ holds 2 datasets where scale, growth_tracker and skipped_steps were "
                "expected");
}

}  // namespace
}  // namespace strata::io
