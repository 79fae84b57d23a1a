// io/checkpoint: every field round-trips bit for bit, CRC-32 matches zlib, and truncated,
// bit-flipped, foreign, incomplete and wrong-version files fail with messages naming the
// file and the dataset; CheckpointDir commits atomically, keeps K and skips damaged files.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/ops.h"
#include "io/checkpoint.h"
#include "io/checkpoint_async.h"
#include "io/checkpoint_dir.h"
#include "io/hdf5.h"
#include "tests/support/values.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  return strata::testing::fresh_temp_dir("strata_test_ckpt_" + name);
}

Checkpoint sample_checkpoint(int64_t step = 7) {
  Generator g(3);
  Checkpoint c;
  c.step = step;
  c.epoch = 2;
  c.config = {{"task", "classify"}, {"optim", {{"lr", 0.001}}}};
  c.layout = {{"world_size", 1}};
  c.model["conv1.weight"] = randn({4, 1, 3, 3}, g);
  c.model["fc.weight"] = randn({10, 16}, g);
  c.model["bn.running_mean"] = randn({4}, g, DType::f64);
  c.model["emb.weight"] = randn({5, 2}, g).to(DType::bf16);
  c.optimizer["0.1.exp_avg"] = randn({10, 16}, g);
  c.optimizer["0.1.step"] = scalar_tensor(7, DType::f64);
  c.optimizer["step"] = scalar_tensor(7, DType::i64);
  // Seeds above 2^63 are stored as the same 64 bits in an i64 dataset.
  c.rng["init"] = {0xFEDCBA9876543210ull, 12};
  c.rng["model.drop"] = {5, 0xFFFFFFFFFFFFFFFFull};
  c.samplers["train"] = {3, 128};
  c.extra["queue"] = randint(0, 100, {3, 4}, g);
  return c;
}

void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  EXPECT_EQ(0, std::memcmp(ca.raw_data(), cb.raw_data(), a.numel() * dtype_size(a.dtype())))
      << name;
}

void expect_same_maps(const std::map<std::string, Tensor>& a,
                      const std::map<std::string, Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    expect_same_bits(v, b.at(k), k);
  }
}

using strata::testing::message_of;

haddr_t data_offset(const std::string& path, const std::string& dataset) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t ds = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  haddr_t off = H5Dget_offset(ds);
  H5Dclose(ds);
  H5Fclose(file);
  return off;
}

void flip_bit(const std::string& path, std::streamoff offset, int bit) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ (1 << bit));
  f.seekp(offset);
  f.write(&c, 1);
}

TEST(Crc32, MatchesTheStandardCheckValueAndZlib) {
  const char* check_input = "123456789";
  EXPECT_EQ(crc32(check_input, 9), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  std::vector<unsigned char> buf(1 << 20);
  for (size_t i = 0; i < buf.size(); ++i)
    buf[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
  // Every length up to 1100 at every alignment covers the folding loop's tails (x86-64 folds
  // with PCLMULQDQ from 64 bytes on) and the table path; then one large buffer.
  for (size_t start = 0; start < 16; ++start) {
    for (size_t n = 0; n <= 1100; ++n) {
      uLong ref = ::crc32(0L, buf.data() + start, static_cast<uInt>(n));
      ASSERT_EQ(crc32(buf.data() + start, n), static_cast<uint32_t>(ref)) << start << " " << n;
    }
  }
  EXPECT_EQ(crc32(buf.data(), buf.size()),
            static_cast<uint32_t>(::crc32(0L, buf.data(), static_cast<uInt>(buf.size()))));
  // Continuation: crc(a + b) == crc(b, crc(a)).
  EXPECT_EQ(crc32(buf.data() + 100, 931, crc32(buf.data(), 100)), crc32(buf.data(), 1031));
}

TEST(Checkpoint, EveryFieldRoundTripsBitForBit) {
  std::string path = temp_dir("roundtrip") + "/c.h5";
  Checkpoint c = sample_checkpoint();
  write_checkpoint(path, c);
  Checkpoint r = read_checkpoint(path);
  EXPECT_EQ(r.step, 7);
  EXPECT_EQ(r.epoch, 2);
  EXPECT_EQ(r.config, c.config);
  EXPECT_EQ(r.layout, c.layout);
  expect_same_maps(c.model, r.model);
  expect_same_maps(c.optimizer, r.optimizer);
  expect_same_maps(c.extra, r.extra);
  EXPECT_EQ(r.rng, c.rng);
  ASSERT_EQ(r.samplers.size(), 1u);
  EXPECT_EQ(r.samplers["train"].epoch, 3);
  EXPECT_EQ(r.samplers["train"].cursor, 128);
}

TEST(Checkpoint, EveryRanksStreamsRoundTrip) {
  std::string path = temp_dir("ranks") + "/c.h5";
  Checkpoint c = sample_checkpoint();
  c.layout = {{"world_size", 3}};
  c.rng["data"] = {11, 40};
  for (uint64_t r = 1; r < 3; ++r) {
    RankStreams s;
    s.rng["init"] = c.rng["init"];
    s.rng["data"] = {11 + r * 0x9E3779B97F4A7C15ull, 40};
    s.rng["model.drop"] = c.rng["model.drop"];
    s.samplers["train"] = {3, static_cast<int64_t>(128 + r)};
    c.other_ranks.push_back(s);
  }
  write_checkpoint(path, c);
  Checkpoint r = read_checkpoint(path);
  EXPECT_EQ(r.rng, c.rng);
  ASSERT_EQ(r.other_ranks.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(r.other_ranks[k].rng, c.other_ranks[k].rng) << "rank " << k + 1;
    EXPECT_EQ(r.other_ranks[k].samplers.at("train").cursor, static_cast<int64_t>(129 + k));
  }
  // Rank 0 keeps the version-1 names; the others are under rank<N>/.
  {
    H5File f(path, H5File::Mode::read);
    EXPECT_TRUE(f.has("rng/data"));
    EXPECT_TRUE(f.has("rng/rank2/data"));
    EXPECT_TRUE(f.has("sampler/rank1/train"));
  }
  // A one-process checkpoint has no rank groups at all.
  write_checkpoint(path, sample_checkpoint());
  EXPECT_TRUE(read_checkpoint(path).other_ranks.empty());
}

TEST(Checkpoint, InspectListsNamesShapesAndDtypes) {
  std::string path = temp_dir("inspect") + "/c.h5";
  write_checkpoint(path, sample_checkpoint(42));
  CheckpointInfo info = inspect_checkpoint(path);
  EXPECT_EQ(info.step, 42);
  EXPECT_EQ(info.version, kCheckpointVersion);
  std::map<std::string, CheckpointEntry> by_name;
  for (const auto& e : info.entries) by_name[e.name] = e;
  ASSERT_TRUE(by_name.count("model/conv1.weight"));
  EXPECT_EQ(by_name["model/conv1.weight"].shape, (Shape{4, 1, 3, 3}));
  EXPECT_EQ(by_name["model/conv1.weight"].bytes, 36 * 4);
  EXPECT_EQ(by_name["model/emb.weight"].dtype, DType::bf16);
  EXPECT_EQ(by_name["rng/init"].shape, (Shape{2}));
  EXPECT_TRUE(by_name.count("schedule/step"));
  EXPECT_EQ(info.entries.size(), 12u);
}

TEST(Checkpoint, BitFlipInDataNamesFileAndDataset) {
  std::string path = temp_dir("bitflip") + "/c.h5";
  write_checkpoint(path, sample_checkpoint());
  haddr_t off = data_offset(path, "model/fc.weight");
  ASSERT_NE(off, HADDR_UNDEF);
  flip_bit(path, static_cast<std::streamoff>(off) + 37, 3);
  std::string msg = message_of([&] { read_checkpoint(path); });
  EXPECT_EQ(msg.rfind("[checkpoint] " + path + ": dataset 'model/fc.weight' fails its checksum", 0),
            0u)
      << msg;
  EXPECT_NE(msg.find("resume from an earlier checkpoint"), std::string::npos) << msg;
}

TEST(Checkpoint, TruncatedFileNamesTheFile) {
  std::string path = temp_dir("truncated") + "/c.h5";
  write_checkpoint(path, sample_checkpoint());
  fs::resize_file(path, fs::file_size(path) / 2);
  std::string msg = message_of([&] { read_checkpoint(path); });
  EXPECT_EQ(msg.rfind("[checkpoint] cannot open " + path + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(Checkpoint, ForeignFilesAreRejected) {
  std::string dir = temp_dir("foreign");
  {
    H5File other(dir + "/other.h5", H5File::Mode::create);
    other.write_tensor("weights", zeros({2}));
  }
  EXPECT_EQ(message_of([&] { read_checkpoint(dir + "/other.h5"); }),
            "[checkpoint] " + dir +
                "/other.h5 is not a strata checkpoint: it is an HDF5 file without the root "
                "attribute format='strata-checkpoint'");
  {
    H5File other(dir + "/other2.h5", H5File::Mode::create);
    other.write_attribute("format", "keras");
  }
  EXPECT_EQ(message_of([&] { read_checkpoint(dir + "/other2.h5"); }),
            "[checkpoint] " + dir +
                "/other2.h5 is not a strata checkpoint: its format attribute is 'keras', "
                "expected 'strata-checkpoint'");
  std::ofstream(dir + "/notes.h5") << "not hdf5 at all\n";
  std::string msg = message_of([&] { read_checkpoint(dir + "/notes.h5"); });
  EXPECT_EQ(msg.rfind("[checkpoint] cannot open " + dir + "/notes.h5: ", 0), 0u) << msg;
}

TEST(Checkpoint, OtherVersionsAreRejectedWithAdvice) {
  std::string path = temp_dir("version") + "/c.h5";
  write_checkpoint(path, sample_checkpoint());
  EXPECT_EQ(read_checkpoint(path).version, 2);
  {
    H5File f(path, H5File::Mode::append);
    f.write_attribute("version", "3");
  }
  EXPECT_EQ(message_of([&] { read_checkpoint(path); }),
            "[checkpoint] " + path +
                " has format version 3, but this build of strata reads versions 1 to 2; use "
                "the strata that wrote it (its `strata ckpt export` writes plain arrays)");
  // Version 1 (optimizer keys "<group>.<index>.<slot>") still reads; resume converts its keys.
  {
    H5File f(path, H5File::Mode::append);
    f.write_attribute("version", "1");
  }
  Checkpoint v1 = read_checkpoint(path);
  EXPECT_EQ(v1.version, 1);
  EXPECT_TRUE(v1.optimizer.count("0.1.exp_avg"));
}

TEST(Checkpoint, MissingDatasetIsReportedAsIncomplete) {
  std::string path = temp_dir("incomplete") + "/c.h5";
  write_checkpoint(path, sample_checkpoint());
  {
    H5File f(path, H5File::Mode::append);
    auto names = nlohmann::json::parse(f.read_attribute("datasets"));
    names.push_back("model/head.bias");
    f.write_attribute("datasets", names.dump());
  }
  EXPECT_EQ(message_of([&] { read_checkpoint(path); }),
            "[checkpoint] " + path +
                " is incomplete: dataset 'model/head.bias' listed in its manifest is missing");
}

TEST(Checkpoint, AnySingleBitFlipIsDetectedOrHarmless) {
  // Metadata carries HDF5's own checksums and data our CRC-32, so a flipped bit anywhere
  // either fails the read or lands in unused bytes and changes nothing.
  std::string dir = temp_dir("fuzz");
  Checkpoint c = sample_checkpoint();
  write_checkpoint(dir + "/clean.h5", c);
  auto size = static_cast<int64_t>(fs::file_size(dir + "/clean.h5"));
  int detected = 0, trials = 0;
  for (int64_t off = 0; off < size; off += 23, ++trials) {
    fs::copy_file(dir + "/clean.h5", dir + "/f.h5", fs::copy_options::overwrite_existing);
    flip_bit(dir + "/f.h5", off, static_cast<int>(off % 8));
    try {
      Checkpoint r = read_checkpoint(dir + "/f.h5");
      EXPECT_EQ(r.step, c.step) << "offset " << off;
      EXPECT_EQ(r.config, c.config) << "offset " << off;
      EXPECT_EQ(r.rng, c.rng) << "offset " << off;
      expect_same_maps(c.model, r.model);
      expect_same_maps(c.optimizer, r.optimizer);
    } catch (const Error& e) {
      ++detected;
      EXPECT_EQ(std::string(e.what()).rfind("[checkpoint] ", 0), 0u) << e.what();
    }
  }
  EXPECT_GT(detected, trials / 2) << "of " << trials << " flips";
}

TEST(CheckpointDir, CommitsKeepsKAndMovesLatestLast) {
  std::string dir = temp_dir("dir");
  CheckpointDir cd(dir, 2);
  std::ofstream(dir + "/ckpt-5.h5.tmp") << "left by a killed writer";
  std::ofstream(dir + "/latest.tmp") << "ckpt-5.h5";
  for (int64_t step : {10, 20, 30})
    EXPECT_EQ(cd.save(sample_checkpoint(step)), dir + "/ckpt-" + std::to_string(step) + ".h5");
  EXPECT_EQ(cd.files(), (std::vector<std::string>{dir + "/ckpt-30.h5", dir + "/ckpt-20.h5"}));
  EXPECT_EQ(cd.latest(), dir + "/ckpt-30.h5");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ckpt-20.h5", "ckpt-30.h5", "latest"}));
}

TEST(CheckpointDir, NewestValidSkipsDamagedFiles) {
  std::string dir = temp_dir("fallback");
  CheckpointDir cd(dir, 3);
  for (int64_t step : {1, 2, 3}) cd.save(sample_checkpoint(step));
  fs::resize_file(dir + "/ckpt-3.h5", fs::file_size(dir + "/ckpt-3.h5") - 100);
  auto found = cd.newest_valid();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, dir + "/ckpt-2.h5");
  EXPECT_EQ(found->ckpt.step, 2);
  ASSERT_EQ(found->skipped.size(), 1u);
  EXPECT_EQ(found->skipped[0].rfind("[checkpoint] cannot open " + dir + "/ckpt-3.h5", 0), 0u)
      << found->skipped[0];

  std::string empty = temp_dir("empty");
  std::vector<std::string> errors;
  EXPECT_FALSE(CheckpointDir(empty, 1).newest_valid(&errors).has_value());
  EXPECT_TRUE(errors.empty());
}

TEST(CheckpointDir, StepOfParsesOnlyCheckpointNames) {
  EXPECT_EQ(CheckpointDir::step_of("ckpt-120.h5"), 120);
  EXPECT_EQ(CheckpointDir::step_of("ckpt-0.h5"), 0);
  EXPECT_EQ(CheckpointDir::step_of("ckpt-12.h5.tmp"), -1);
  EXPECT_EQ(CheckpointDir::step_of("ckpt-.h5"), -1);
  EXPECT_EQ(CheckpointDir::step_of("ckpt-1x.h5"), -1);
  EXPECT_EQ(CheckpointDir::step_of("latest"), -1);
}

TEST(CheckpointDir, RejectsKeepBelowOne) {
  EXPECT_EQ(message_of([] { CheckpointDir("/tmp/x", 0); }),
            "[checkpoint] checkpoint.keep must be at least 1, got 0");
}

TEST(AsyncCheckpointWriter, SnapshotIsTakenBeforeSaveReturns) {
  std::string dir = temp_dir("async");
  AsyncCheckpointWriter writer(CheckpointDir(dir, 2));
  EXPECT_EQ(writer.poll(), "");
  Checkpoint c = sample_checkpoint(5);
  Tensor live = c.model["fc.weight"];
  float before = live.data<float>()[3];
  writer.save(c);
  live.data<float>()[3] = 1234.5f;  // training goes on and changes the parameters
  EXPECT_TRUE(writer.in_flight());
  EXPECT_EQ(writer.wait(), dir + "/ckpt-5.h5");
  EXPECT_FALSE(writer.in_flight());
  EXPECT_EQ(read_checkpoint(dir + "/ckpt-5.h5").model["fc.weight"].data<float>()[3], before);
  // A second save waits for the first: both commit, in order.
  writer.save(sample_checkpoint(6));
  writer.save(sample_checkpoint(7));
  EXPECT_EQ(writer.wait(), dir + "/ckpt-7.h5");
  EXPECT_EQ(CheckpointDir(dir, 2).files(),
            (std::vector<std::string>{dir + "/ckpt-7.h5", dir + "/ckpt-6.h5"}));
}

TEST(AsyncCheckpointWriter, AFailedSaveSurfacesOnceWithTheStep) {
  std::string dir = temp_dir("async_fail");
  std::ofstream(dir + "/blocker") << "a file where a folder should be";
  AsyncCheckpointWriter writer(CheckpointDir(dir + "/blocker/ckpts", 1));
  writer.save(sample_checkpoint(9));
  std::string msg = message_of([&] { writer.wait(); });
  EXPECT_EQ(msg.rfind("[checkpoint] the background save of step 9 failed: [checkpoint] cannot "
                      "create checkpoint.dir " +
                          dir + "/blocker/ckpts",
                      0),
            0u)
      << msg;
  EXPECT_NE(msg.find("the run stops here. The last committed checkpoint is (none)"),
            std::string::npos)
      << msg;
  EXPECT_EQ(writer.wait(), "");  // reported once; the writer can be used again
}

}  // namespace
}  // namespace strata::io
