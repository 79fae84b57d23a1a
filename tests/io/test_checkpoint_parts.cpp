// Checkpoints in several files: parts written by their owners round-trip with sliced optimizer
// state assembled; a missing, damaged or foreign part makes the checkpoint invalid and
// newest_valid falls back; leftovers of uncommitted saves are removed and retention takes the
// parts along; ZeRO-1 state keyed by parameter name moves to other dp sizes bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/autograd/grad_mode.h"
#include "core/ops.h"
#include "core/ops/elementwise.h"
#include "core/optim/adam.h"
#include "distributed/thread_communicator.h"
#include "distributed/zero.h"
#include "io/checkpoint.h"
#include "io/checkpoint_dir.h"
#include "io/hdf5.h"
#include "tests/support/values.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  return strata::testing::fresh_temp_dir("strata_test_parts_" + name);
}

using strata::testing::message_of;

void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  EXPECT_EQ(0, std::memcmp(ca.raw_data(), cb.raw_data(), a.numel() * dtype_size(a.dtype())))
      << name;
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

/// fc.weight's Adam moment, (10, 16) = 160 elements, cut at 70 and 120 over three ranks.
Tensor moment() {
  Generator g(5);
  return randn({10, 16}, g);
}

TensorSlice slice_of(const Tensor& full, int64_t begin, int64_t end) {
  return {full.shape(), begin, full.reshape({full.numel()}).slice(0, begin, end).contiguous()};
}

/// The three files of a step: rank 0's main file, ranks 1 and 2's parts.
std::vector<Checkpoint> three_files(int64_t step, const std::string& token = "feed") {
  Generator g(static_cast<uint64_t>(step));
  Tensor m = moment();
  std::vector<Checkpoint> files(3);
  for (int r = 0; r < 3; ++r) {
    files[r].step = step;
    files[r].token = token;
    files[r].part_rank = r;
  }
  Checkpoint& main = files[0];
  main.layout = {{"world_size", 3}, {"dp", 3}, {"pp", 1}, {"zero", true}};
  main.model["fc.weight"] = randn({10, 16}, g);
  main.optimizer["step"] = scalar_tensor(static_cast<double>(step), DType::i64);
  main.optimizer["fc.weight/step"] = scalar_tensor(static_cast<double>(step), DType::f64);
  main.optimizer_slices["fc.weight/exp_avg"] = slice_of(m, 0, 70);
  main.rng["init"] = {1, 10};
  main.samplers["train"] = {0, 32};
  main.parts = {{1, part_file_name(step, 1)}, {2, part_file_name(step, 2)}};
  files[1].optimizer_slices["fc.weight/exp_avg"] = slice_of(m, 70, 120);
  files[1].other_ranks.resize(1);
  files[1].other_ranks[0].rng["init"] = {1, 11};
  files[2].optimizer_slices["fc.weight/exp_avg"] = slice_of(m, 120, 160);
  files[2].other_ranks.resize(2);
  files[2].other_ranks[1].rng["init"] = {1, 12};
  return files;
}

/// Parts first (each durable under its final name), then the main file's commit.
void save_three(const CheckpointDir& dir, int64_t step) {
  std::vector<Checkpoint> files = three_files(step);
  dir.write_part(files[1]);
  dir.write_part(files[2]);
  dir.save(files[0]);
}

TEST(CheckpointParts, SlicesFromEveryPartAssembleBitForBit) {
  std::string dir = temp_dir("roundtrip");
  CheckpointDir cd(dir, 2);
  save_three(cd, 7);
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"ckpt-7.h5", "ckpt-7.part1.h5",
                                                    "ckpt-7.part2.h5", "latest"}));
  Checkpoint r = read_checkpoint(dir + "/ckpt-7.h5");
  EXPECT_TRUE(r.optimizer_slices.empty());
  ASSERT_TRUE(r.optimizer.count("fc.weight/exp_avg"));
  expect_same_bits(r.optimizer.at("fc.weight/exp_avg"), moment(), "fc.weight/exp_avg");
  EXPECT_EQ(r.optimizer.at("fc.weight/step").item(), 7.0);
  EXPECT_EQ(r.token, "feed");
  EXPECT_EQ(r.parts, three_files(7)[0].parts);
  ASSERT_EQ(r.other_ranks.size(), 2u);
  EXPECT_EQ(r.other_ranks[0].rng.at("init").offset, 11u);
  EXPECT_EQ(r.other_ranks[1].rng.at("init").offset, 12u);
  EXPECT_EQ(r.rng.at("init").offset, 10u);

  // inspect lists the parts' datasets under the names h5py sees through the external links.
  CheckpointInfo info = inspect_checkpoint(dir + "/ckpt-7.h5");
  std::map<std::string, CheckpointEntry> by_name;
  for (const auto& e : info.entries) by_name[e.name] = e;
  ASSERT_TRUE(by_name.count("parts/rank2/optimizer_slice/fc.weight/exp_avg"));
  EXPECT_EQ(by_name["parts/rank2/optimizer_slice/fc.weight/exp_avg"].shape, Shape{40});
  EXPECT_EQ(by_name["parts/rank1/rng/rank1/init"].shape, Shape{2});
  EXPECT_EQ(by_name["optimizer_slice/fc.weight/exp_avg"].shape, Shape{70});
  EXPECT_EQ(info.parts.size(), 2u);
}

TEST(CheckpointParts, AMissingDamagedOrForeignPartInvalidatesTheCheckpoint) {
  std::string dir = temp_dir("invalid");
  CheckpointDir cd(dir, 5);
  for (int64_t step : {1, 2, 3, 4}) save_three(cd, step);

  fs::remove(dir + "/ckpt-4.part2.h5");
  std::string missing = message_of([&] { read_checkpoint(dir + "/ckpt-4.h5"); });
  EXPECT_EQ(missing.rfind("[checkpoint] " + dir + "/ckpt-4.h5 is incomplete: its part file " + dir +
                              "/ckpt-4.part2.h5 (rank 2's state) cannot be read: " +
                              "[checkpoint] cannot open " + dir + "/ckpt-4.part2.h5",
                          0),
            0u)
      << missing;

  // Data that rots under its checksum in a part fails that part's check.
  {
    H5File f(dir + "/ckpt-3.part1.h5", H5File::Mode::append);
    const std::string name = "optimizer_slice/fc.weight/exp_avg";
    std::string crc = f.read_dataset_attribute(name, "crc32");
    std::string offset = f.read_dataset_attribute(name, "offset");
    std::string full_shape = f.read_dataset_attribute(name, "full_shape");
    Tensor rotten = f.read_tensor(name).clone();
    rotten.data<float>()[5] += 1.0f;
    f.write_tensor(name, rotten);
    f.write_dataset_attribute(name, "crc32", crc);
    f.write_dataset_attribute(name, "offset", offset);
    f.write_dataset_attribute(name, "full_shape", full_shape);
  }
  std::string damaged = message_of([&] { read_checkpoint(dir + "/ckpt-3.h5"); });
  EXPECT_EQ(damaged.rfind("[checkpoint] " + dir +
                              "/ckpt-3.part1.h5: dataset "
                              "'optimizer_slice/fc.weight/exp_avg' fails its checksum",
                          0),
            0u)
      << damaged;

  // A part of another save (same name, other token) is not taken for this one's.
  CheckpointDir(dir + "/other", 1).write_part(three_files(2, "beef")[1]);
  fs::copy_file(dir + "/other/ckpt-2.part1.h5", dir + "/ckpt-2.part1.h5",
                fs::copy_options::overwrite_existing);
  std::string foreign = message_of([&] { read_checkpoint(dir + "/ckpt-2.h5"); });
  EXPECT_EQ(foreign, "[checkpoint] " + dir + "/ckpt-2.h5: its part file " + dir +
                         "/ckpt-2.part1.h5 belongs to another save (rank 1, step 2, token "
                         "'beef'; expected rank 1, step 2, token 'feed'); the checkpoint is "
                         "incomplete: resume from an earlier one");

  std::vector<std::string> errors;
  auto found = cd.newest_valid(&errors);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, dir + "/ckpt-1.h5");
  EXPECT_EQ(found->skipped, (std::vector<std::string>{missing, damaged, foreign}));
  expect_same_bits(found->ckpt.optimizer.at("fc.weight/exp_avg"), moment(), "step 1");
}

TEST(CheckpointParts, LeftoversOfUncommittedSavesAreRemovedAndRetentionTakesParts) {
  std::string dir = temp_dir("leftovers");
  CheckpointDir cd(dir, 2);
  save_three(cd, 1);
  save_three(cd, 2);
  // A save of step 3 that died before its commit: a part and temporaries, no main file.
  std::vector<Checkpoint> three = three_files(3);
  cd.write_part(three[1]);
  std::ofstream(dir + "/ckpt-3.part2.h5.tmp") << "killed mid-write";
  std::ofstream(dir + "/ckpt-3.h5.tmp") << "killed mid-write";
  // Step 4 is being saved: rank 1's part is durable, rank 2 is still writing its temporary.
  std::vector<Checkpoint> four = three_files(4);
  cd.write_part(four[1]);
  std::ofstream(dir + "/ckpt-4.part2.h5.tmp") << "being written by rank 2";
  std::string tmp = cd.prepare(four[0]);
  EXPECT_EQ(tmp, dir + "/ckpt-4.h5.tmp");
  EXPECT_EQ(listing(dir), (std::vector<std::string>{
                              "ckpt-1.h5", "ckpt-1.part1.h5", "ckpt-1.part2.h5", "ckpt-2.h5",
                              "ckpt-2.part1.h5", "ckpt-2.part2.h5", "ckpt-4.h5.tmp",
                              "ckpt-4.part1.h5", "ckpt-4.part2.h5.tmp", "latest"}));
  EXPECT_EQ(cd.latest(), dir + "/ckpt-2.h5");  // nothing of step 4 counts yet
  cd.write_part(four[2]);
  EXPECT_EQ(cd.commit(4), dir + "/ckpt-4.h5");
  EXPECT_EQ(listing(dir), (std::vector<std::string>{
                              "ckpt-2.h5", "ckpt-2.part1.h5", "ckpt-2.part2.h5", "ckpt-4.h5",
                              "ckpt-4.part1.h5", "ckpt-4.part2.h5", "latest"}));
  EXPECT_EQ(cd.latest(), dir + "/ckpt-4.h5");
  EXPECT_EQ(read_checkpoint(dir + "/ckpt-4.h5").step, 4);
}

TEST(CheckpointParts, PartNamesAndPartFilesAreNotCheckpoints) {
  int64_t step = 0, rank = 0;
  EXPECT_TRUE(CheckpointDir::parse_part("ckpt-12.part3.h5", step, rank));
  EXPECT_EQ(step, 12);
  EXPECT_EQ(rank, 3);
  for (const char* bad : {"ckpt-12.part0.h5", "ckpt-12.part3.h5.tmp", "ckpt-12.h5",
                          "ckpt-x.part1.h5", "ckpt-12.part.h5", "ckpt-12.part3x.h5"}) {
    EXPECT_FALSE(CheckpointDir::parse_part(bad, step, rank)) << bad;
  }
  EXPECT_EQ(CheckpointDir::step_of("ckpt-12.part3.h5"), -1);
  EXPECT_EQ(part_file_name(12, 3), "ckpt-12.part3.h5");

  std::string dir = temp_dir("part_alone");
  CheckpointDir cd(dir, 1);
  save_three(cd, 7);
  EXPECT_EQ(cd.files(), std::vector<std::string>{dir + "/ckpt-7.h5"});
  EXPECT_EQ(message_of([&] { read_checkpoint(dir + "/ckpt-7.part1.h5"); }),
            "[checkpoint] " + dir +
                "/ckpt-7.part1.h5 is rank 1's part of the checkpoint of step 7; read its main "
                "file ckpt-7.h5");
}

TEST(CheckpointParts, SlicesThatLeaveAGapAreRefused) {
  std::string dir = temp_dir("gap");
  std::vector<Checkpoint> files = three_files(5);
  files[0].parts.pop_back();  // rank 2's slice [120, 160) is not part of the checkpoint
  CheckpointDir cd(dir, 1);
  cd.write_part(files[1]);
  cd.save(files[0]);
  EXPECT_EQ(message_of([&] { read_checkpoint(dir + "/ckpt-5.h5"); }),
            "[checkpoint] " + dir +
                "/ckpt-5.h5: the slices of optimizer state 'fc.weight/exp_avg' cover 120 of its "
                "160 elements; a part file is missing");
}

// ZeRO-1 state by parameter name --------------------------------------------------------

const std::vector<std::string> kNames = {"a.weight", "b.bias", "c.weight"};

/// Three parameters of 35 + 3 + 16 = 54 elements (shards of 2 and 3 ranks cut them).
std::vector<Tensor> make_params() {
  Generator g(11);
  std::vector<Tensor> out = {randn({5, 7}, g), randn({3}, g), randn({4, 4}, g)};
  for (Tensor& p : out) p.set_requires_grad(true);
  return out;
}

/// The same gradients on every rank at every step, so the average is exact.
void set_grads(const std::vector<Tensor>& params, int step) {
  Generator g(100 + static_cast<uint64_t>(step));
  for (const Tensor& p : params) {
    Tensor grad = randn(p.shape(), g);
    Tensor(p).set_grad(grad);
  }
}

std::unique_ptr<optim::Optimizer> adamw(std::vector<optim::ParamGroup> groups) {
  return std::make_unique<optim::AdamW>(std::move(groups), optim::AdamWOptions{});
}

std::unique_ptr<dist::ZeroOptimizer> make_zero(const std::vector<Tensor>& params,
                                               dist::Communicator& comm) {
  return std::make_unique<dist::ZeroOptimizer>(
      std::vector<optim::ParamGroup>{{params, {}, {}, {}}},
      std::shared_ptr<dist::Communicator>(&comm, [](dist::Communicator*) {}), adamw);
}

/// ZeRO over `ranks` thread ranks for `steps` steps; each rank's shard exported by name.
std::vector<dist::ShardState> zero_shards(int ranks, int steps) {
  std::vector<dist::ShardState> shards(ranks);
  dist::run_thread_ranks(ranks, [&](dist::Communicator& comm) {
    std::vector<Tensor> params = make_params();
    auto zero = make_zero(params, comm);
    for (int s = 0; s < steps; ++s) {
      set_grads(params, s);
      zero->step();
    }
    shards[comm.rank()] = zero->export_state(kNames);
  });
  return shards;
}

/// Rank r's shard as the checkpoint it writes: rank 0's the main file, the others' parts.
std::vector<Checkpoint> checkpoints_of(const std::vector<dist::ShardState>& shards, int64_t step) {
  std::vector<Checkpoint> files(shards.size());
  for (size_t r = 0; r < shards.size(); ++r) {
    files[r].step = step;
    files[r].token = "0123";
    files[r].part_rank = static_cast<int>(r);
    for (auto& [k, t] : shards[r].whole) {
      if (k != "step" || r == 0) files[r].optimizer[k] = t;
    }
    for (auto& [k, sl] : shards[r].slices) {
      files[r].optimizer_slices[k] = {sl.shape, sl.offset, sl.values};
    }
    if (r > 0) files[0].parts.push_back({static_cast<int>(r), part_file_name(step, r)});
  }
  return files;
}

/// A plain optimizer's state keyed by parameter name ("a.weight/exp_avg"), as ZeRO names it.
std::map<std::string, Tensor> state_by_name(const optim::Optimizer& plain) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : plain.state_dict()) {
    if (k == "step") {
      out[k] = t;
      continue;
    }
    size_t a = k.find('.'), b = k.find('.', a + 1);
    out[kNames.at(std::stoul(k.substr(a + 1, b - a - 1))) + "/" + k.substr(b + 1)] = t;
  }
  return out;
}

/// Every rank's parameters after importing `state` into ZeRO over `ranks` ranks (parameters
/// set to `start`) and taking step `step`.
std::vector<std::vector<Tensor>> step_after_import(int ranks, const std::vector<Tensor>& start,
                                                   const std::map<std::string, Tensor>& state,
                                                   int step) {
  std::vector<std::vector<Tensor>> after(ranks);
  dist::run_thread_ranks(ranks, [&](dist::Communicator& comm) {
    std::vector<Tensor> params = make_params();
    {
      NoGradGuard guard;
      for (size_t i = 0; i < params.size(); ++i) copy_(params[i], start[i]);
    }
    auto zero = make_zero(params, comm);
    zero->import_state(kNames, state);
    set_grads(params, step);
    zero->step();
    after[comm.rank()] = params;
  });
  return after;
}

TEST(CheckpointParts, ZeroStateByNameMovesToOtherDpSizesBitForBit) {
  // Reference: one plain AdamW over the full parameters, 3 steps; ZeRO over 2 ranks the same.
  std::vector<Tensor> ref = make_params();
  optim::AdamW plain(ref, optim::AdamWOptions{});
  for (int s = 0; s < 3; ++s) {
    set_grads(ref, s);
    plain.step();
  }
  std::vector<Checkpoint> files = checkpoints_of(zero_shards(2, 3), 3);
  // Chunks of 27 elements: a.weight (35) is cut between the ranks, b.bias is rank 1's.
  ASSERT_TRUE(files[1].optimizer_slices.count("a.weight/exp_avg"));
  EXPECT_EQ(files[1].optimizer_slices.at("a.weight/exp_avg").offset, 27);
  EXPECT_EQ(files[1].optimizer_slices.at("a.weight/exp_avg").values.numel(), 8);
  EXPECT_EQ(files[0].optimizer_slices.at("a.weight/exp_avg").values.numel(), 27);
  EXPECT_FALSE(files[0].optimizer_slices.count("b.bias/exp_avg"));
  EXPECT_TRUE(files[0].optimizer.count("a.weight/step")) << "its first element is rank 0's";
  EXPECT_FALSE(files[1].optimizer.count("a.weight/step"));
  // HDF5 from this thread only: rank 1's part, then rank 0's main file.
  CheckpointDir cd(temp_dir("zero"), 1);
  cd.write_part(files[1]);
  Checkpoint read = read_checkpoint(cd.save(files[0]));

  // The assembled state is the plain optimizer's, key for key, bit for bit.
  std::map<std::string, Tensor> want = state_by_name(plain);
  ASSERT_EQ(read.optimizer.size(), want.size());
  for (const auto& [k, t] : want) {
    ASSERT_TRUE(read.optimizer.count(k)) << k;
    expect_same_bits(read.optimizer.at(k), t, k);
  }
  // Imported into 3 ranks (other cuts) and 1 rank, the next step equals the plain one's.
  std::vector<Tensor> at3;
  for (const Tensor& p : ref) at3.push_back(p.detach().clone());
  set_grads(ref, 3);
  plain.step();
  for (int ranks : {3, 1}) {
    std::vector<std::vector<Tensor>> after = step_after_import(ranks, at3, read.optimizer, 3);
    for (int r = 0; r < ranks; ++r) {
      for (size_t i = 0; i < ref.size(); ++i) {
        expect_same_bits(after[r][i].detach(), ref[i].detach(),
                         str_cat(ranks, " ranks, rank ", r, ", ", kNames[i]));
      }
    }
  }
}

TEST(CheckpointParts, ZeroStateForAnotherModelIsRefusedByName) {
  std::map<std::string, Tensor> stray = checkpoints_of(zero_shards(1, 1), 1)[0].optimizer;
  stray["d.weight/exp_avg"] = zeros({2});
  dist::run_thread_ranks(1, [&](dist::Communicator& comm) {
    std::vector<Tensor> params = make_params();
    auto zero = make_zero(params, comm);
    EXPECT_EQ(message_of([&] { zero->import_state(kNames, stray); }),
              "[ZeroOptimizer] import_state: optimizer state 'd.weight/exp_avg' is for parameter "
              "'d.weight', which this optimizer does not have; was it written for another model?");
  });
}

}  // namespace
}  // namespace strata::io
