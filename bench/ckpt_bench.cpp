// Checkpoint cost: write throughput of a GPT-sized state (CheckpointDir::save: HDF5, CRC-32,
// fsync, atomic commit) against a raw write + fsync of the same bytes to the same folder in the
// same run, and the training slowdown (steps/s) while an asynchronous save is in flight.
// Prints two JSON lines. Run (a quiet machine; `uptime`):
//   strata_ckpt_bench [--dir=/tmp/strata_ckpt_bench --layers=8 --width=512 --repeats=5
//                      --train_layers=2 --train_width=256 --seq=64 --batch=8 --steps=100
//                      --rounds=5]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_args.h"
#include "core/ops.h"
#include "core/optim/adam.h"
#include "io/checkpoint_async.h"
#include "io/checkpoint_dir.h"
#include "models/gpt.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Args {
  std::map<std::string, double> num = {{"layers", 8},       {"width", 512},       {"repeats", 5},
                                       {"train_layers", 2}, {"train_width", 256}, {"seq", 64},
                                       {"batch", 8},        {"steps", 100},       {"rounds", 5}};
  std::string dir = "/tmp/strata_ckpt_bench";
};

Args parse(int argc, char** argv) {
  Args a;
  bench::BenchArgs parsed =
      bench::parse_bench_args(argc, argv, "ckpt_bench", {a.num, {{"dir", a.dir}}});
  a.num = parsed.num;
  a.dir = parsed.str.at("dir");
  return a;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

models::GPTConfig gpt_config(int64_t layers, int64_t width, int64_t seq) {
  return {.vocab_size = 512,
          .block_size = seq,
          .n_layer = layers,
          .n_head = width / 64,
          .n_embd = width};
}

/// The same bytes as the checkpoint's tensors, written with plain write(2) calls (one per
/// tensor, as large as they come), then fsync and close: what the disk gives without a format.
void raw_write(const std::string& path, const std::map<std::string, Tensor>& tensors) {
  fs::remove(path);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  check(fd >= 0, "[ckpt_bench] cannot create ", path);
  for (const auto& [name, t] : tensors) {
    const char* p = static_cast<const char*>(t.raw_data());
    size_t left = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      check(n > 0, "[ckpt_bench] write to ", path, " failed");
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  check(::fsync(fd) == 0 && ::close(fd) == 0, "[ckpt_bench] fsync/close of ", path, " failed");
}

/// Median seconds of a checkpoint commit and of a raw write of the same bytes, alternated.
void bench_write(const Args& a, const io::Checkpoint& ckpt, int64_t bytes) {
  io::CheckpointDir dir(a.dir + "/sync", 1);
  std::vector<double> ckpt_s, raw_s;
  int64_t file_bytes = 0;
  io::Checkpoint c = ckpt;
  for (int r = 0; r < static_cast<int>(a.num.at("repeats")); ++r) {
    auto t = Clock::now();
    raw_write(a.dir + "/raw.bin", ckpt.model);
    raw_s.push_back(seconds_since(t));
    c.step = r + 1;
    t = Clock::now();
    std::string path = dir.save(c);
    ckpt_s.push_back(seconds_since(t));
    file_bytes = static_cast<int64_t>(fs::file_size(path));
  }
  double cs = median(ckpt_s), rs = median(raw_s);
  std::printf(
      "{\"bench\": \"ckpt_write\", \"tensor_bytes\": %lld, \"file_bytes\": %lld, \"repeats\": %d, "
      "\"ckpt_s\": %.4f, \"raw_s\": %.4f, \"ckpt_MBps\": %.1f, \"raw_MBps\": %.1f, "
      "\"ratio\": %.3f}\n",
      static_cast<long long>(bytes), static_cast<long long>(file_bytes),
      static_cast<int>(ckpt_s.size()), cs, rs, static_cast<double>(bytes) / cs / 1e6,
      static_cast<double>(bytes) / rs / 1e6, rs / cs);
  std::fflush(stdout);
}

/// A small GPT trained with AdamW on a fixed batch: one step's wall time is the unit.
struct Trainer {
  models::GPT model;
  optim::AdamW opt;
  Tensor x, y;
  Trainer(const models::GPTConfig& cfg, Generator& gen, int64_t batch)
      : model(cfg, gen),
        opt({{model.trainable_parameters(), 1e-4, 0.01, {}}}, {}),
        x(randint(0, cfg.vocab_size, {batch, cfg.block_size}, gen)),
        y(randint(0, cfg.vocab_size, {batch, cfg.block_size}, gen)) {}
  void step() {
    Tensor loss = model.loss(x, y);
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
};

/// Steps/s with no save against steps/s while the big state is saved in the background, back
/// to back (a new save starts as soon as the previous one commits). The two are measured in
/// alternating blocks (`rounds` of each) so that drift in the machine's load hits both alike.
/// The snapshot (the deep copy AsyncCheckpointWriter::save makes on the training thread) is
/// timed apart.
void bench_async(const Args& a, const io::Checkpoint& ckpt) {
  auto n = [&](const char* k) { return static_cast<int64_t>(a.num.at(k)); };
  Generator gen(7);
  Trainer tr(gpt_config(n("train_layers"), n("train_width"), n("seq")), gen, n("batch"));
  for (int i = 0; i < 3; ++i) tr.step();  // warm up
  io::AsyncCheckpointWriter writer(io::CheckpointDir(a.dir + "/async", 1));
  io::Checkpoint c = ckpt;
  int64_t rounds = n("rounds"), block = std::max<int64_t>(1, n("steps") / rounds);
  double idle_s = 0, busy_s = 0, snapshot_s = 0;
  int64_t saves = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    auto t = Clock::now();
    for (int64_t i = 0; i < block; ++i) tr.step();
    idle_s += seconds_since(t);
    t = Clock::now();
    for (int64_t i = 0; i < block; ++i) {
      if (!writer.in_flight()) {
        auto s = Clock::now();
        c.step = ++saves;
        writer.save(c);
        snapshot_s += seconds_since(s);
      }
      tr.step();
      writer.poll();  // a committed save lets the next step start another
    }
    busy_s += seconds_since(t);
    writer.wait();  // the next idle block runs with no save in flight
  }
  double steps = static_cast<double>(rounds * block);
  double idle_rate = steps / idle_s, busy_rate = steps / (busy_s - snapshot_s);
  std::printf(
      "{\"bench\": \"async_save_slowdown\", \"steps\": %lld, \"saves\": %lld, "
      "\"steps_per_s_idle\": %.3f, \"steps_per_s_in_flight\": %.3f, \"ratio\": %.3f, "
      "\"snapshot_s_per_save\": %.4f, \"steps_per_s_with_snapshots\": %.3f, "
      "\"s_per_save_in_background\": %.3f}\n",
      static_cast<long long>(rounds * block), static_cast<long long>(saves), idle_rate, busy_rate,
      busy_rate / idle_rate, snapshot_s / static_cast<double>(saves), steps / busy_s,
      busy_s / static_cast<double>(saves));
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  Args a = parse(argc, argv);
  fs::remove_all(a.dir);
  fs::create_directories(a.dir);
  Generator gen(1);
  models::GPT big(gpt_config(static_cast<int64_t>(a.num.at("layers")),
                             static_cast<int64_t>(a.num.at("width")), 64),
                  gen);
  io::Checkpoint ckpt;
  ckpt.config = {{"bench", "ckpt_bench"}};
  ckpt.layout = {{"world_size", 1}};
  int64_t bytes = 0;
  // Contiguous host copies: a tied weight appears once per name, as in a real checkpoint.
  for (auto& [name, t] : big.state_dict()) {
    ckpt.model[name] = t.detach().contiguous();
    bytes += t.numel() * dtype_size(t.dtype());
  }
  bench_write(a, ckpt, bytes);
  bench_async(a, ckpt);
  fs::remove_all(a.dir);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) { return strata::bench::run_main(strata::run, argc, argv); }
