// Data-parallel step on CPU under mpirun: how much of the gradient all-reduce hides behind
// backward (from the per-rank timeline) and the bus bandwidth the bucketed all-reduce gets
// against a raw MPI_Allreduce of the same bytes, measured in the same run. One JSON line
// from rank 0. Run: mpirun -np 2 --oversubscribe -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1
//   --mca coll_libnbc_iallreduce_algorithm 1 strata_dp_bench [--layers=4 --width=384 --seq=64
//   --batch=4 --steps=6 --bucket_mb=25 --first_bucket_mb=1 --trace=PREFIX]
// (OpenMPI's default MPI_Iallreduce algorithm reaches about half of MPI_Allreduce here; ring
// (1) reaches about 90%.)
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "bench/bench_args.h"
#include "core/ops.h"
#include "core/optim/adam.h"
#include "distributed/data_parallel.h"
#include "distributed/mpi_communicator.h"
#include "distributed/timeline.h"
#include "models/gpt.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::map<std::string, double> num = {{"layers", 4},     {"width", 384},         {"seq", 64},
                                       {"batch", 4},      {"steps", 6},           {"warmup", 2},
                                       {"bucket_mb", 25}, {"first_bucket_mb", 1}, {"repeats", 10}};
  std::string trace;  // prefix: PREFIX.rank<r>.json per rank
};

Args parse(int argc, char** argv) {
  Args a;
  bench::BenchArgs parsed =
      bench::parse_bench_args(argc, argv, "dp_bench", {a.num, {{"trace", a.trace}}});
  a.num = parsed.num;
  a.trace = parsed.str.at("trace");
  return a;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Bus bandwidth of an all-reduce in GB/s (NCCL's convention): bytes * 2 (n - 1) / n / time.
double bus_gbps(double bytes, int n, double s) { return bytes * 2.0 * (n - 1) / n / s / 1e9; }

/// Seconds per call of `round` (the slowest rank's), after one warm-up call.
double time_rounds(int repeats, const std::function<void()>& round) {
  round();  // warm up
  MPI_Barrier(MPI_COMM_WORLD);
  auto t = Clock::now();
  for (int r = 0; r < repeats; ++r) round();
  double s = seconds_since(t) / repeats;
  MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank
  return s;
}

struct StepResult {
  double step_s = 0, comm_s = 0, hidden_s = 0, wait_s = 0;
  std::vector<int64_t> bucket_bytes;  // of one step, in launch order
};

StepResult train(const Args& a, dist::Communicator& world, dist::Timeline& timeline) {
  auto n = [&](const char* k) { return static_cast<int64_t>(a.num.at(k)); };
  models::GPTConfig cfg{.vocab_size = 512,
                        .block_size = n("seq"),
                        .n_layer = n("layers"),
                        .n_head = n("width") / 64,
                        .n_embd = n("width")};
  Generator gen(1);
  models::GPT model(cfg, gen);
  std::shared_ptr<dist::Communicator> comm(&world, [](dist::Communicator*) {});
  dist::DataParallel dp(
      model, comm,
      {.bucket_bytes = static_cast<int64_t>(a.num.at("bucket_mb") * (1 << 20)),
       .first_bucket_bytes = static_cast<int64_t>(a.num.at("first_bucket_mb") * (1 << 20))});
  auto tl = std::shared_ptr<dist::Timeline>(&timeline, [](dist::Timeline*) {});
  dp.set_timeline(tl);
  optim::AdamW opt({{model.trainable_parameters(), 1e-4, 0.01, {}}}, {});
  Generator data(100 + world.rank());
  Tensor x = randint(0, 512, {n("batch"), n("seq")}, data);
  Tensor y = randint(0, 512, {n("batch"), n("seq")}, data);
  StepResult r;
  Clock::time_point start;
  for (int step = 0; step < n("warmup") + n("steps"); ++step) {
    if (step == n("warmup")) {
      world.barrier();
      timeline.clear();
      start = Clock::now();
    }
    world.set_step(step);
    Tensor loss;
    {
      dist::Timeline::Scope s(&timeline, "forward", "compute");
      loss = model.loss(x, y);
    }
    {
      dist::Timeline::Scope s(&timeline, "backward", "compute");
      loss.backward();
    }
    dp.finish_gradients();
    dist::Timeline::Scope s(&timeline, "optimizer", "compute");
    opt.step();
    opt.zero_grad();
  }
  r.step_s = seconds_since(start) / n("steps");
  auto spans = timeline.spans();
  dist::Overlap o = dist::overlap(spans, "comm", "compute");
  r.comm_s = o.comm_s / n("steps");
  r.hidden_s = o.hidden_s / n("steps");
  size_t buckets = dp.bucket_layout().size();
  for (const auto& s : spans) {
    if (s.category == "wait") r.wait_s += (s.end_us - s.start_us) * 1e-6 / n("steps");
    if (s.category == "comm" && r.bucket_bytes.size() < buckets) r.bucket_bytes.push_back(s.bytes);
  }
  return r;
}

struct Bandwidth {
  double dp_s = 0;               // the communicator's all-reduce (avg) of the buckets
  double raw_s = 0;              // one blocking MPI_Allreduce of all the bytes
  double raw_buckets_s = 0;      // one blocking MPI_Allreduce per bucket
  double raw_nonblocking_s = 0;  // MPI_Iallreduce per bucket, launched back to back
};

/// Seconds per round of each way to all-reduce the step's buckets, without compute.
Bandwidth measure_bandwidth(dist::Communicator& world, const std::vector<int64_t>& bucket_bytes,
                            int repeats) {
  int64_t total = 0;
  std::vector<Tensor> bufs;
  for (int64_t b : bucket_bytes) {
    bufs.push_back(ones({b / 4}));
    total += b;
  }
  Bandwidth bw;
  bw.dp_s = time_rounds(repeats, [&] {
    std::vector<dist::WorkPtr> works;
    for (Tensor& t : bufs) works.push_back(world.all_reduce_async(t, dist::ReduceOp::avg));
    for (auto& w : works) w->wait(world.timeout());
  });
  Tensor flat = ones({total / 4});
  bw.raw_s = time_rounds(repeats, [&] {
    MPI_Allreduce(MPI_IN_PLACE, flat.raw_data(), static_cast<int>(total / 4), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
  });
  bw.raw_buckets_s = time_rounds(repeats, [&] {
    for (Tensor& t : bufs) {
      MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
    }
  });
  // What the communicator does, without its polling and averaging.
  bw.raw_nonblocking_s = time_rounds(repeats, [&] {
    std::vector<MPI_Request> requests(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) {
      MPI_Iallreduce(MPI_IN_PLACE, bufs[i].raw_data(), static_cast<int>(bufs[i].numel()), MPI_FLOAT,
                     MPI_SUM, MPI_COMM_WORLD, &requests[i]);
    }
    MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
  });
  return bw;
}

/// One JSON line. hidden_share: the part of the buckets' launch-to-completion time that
/// overlaps compute (rank 0's timeline). hidden_vs_standalone: 1 - (time finish_gradients()
/// waited, min over ranks) / (the same all-reduces alone), which does not credit a transfer
/// that only progressed later. Bus bandwidth: bytes * 2 (n - 1) / n / time.
void report(int n, const StepResult& r, const Bandwidth& bw) {
  double total = 0;
  for (int64_t b : r.bucket_bytes) total += static_cast<double>(b);
  std::printf(
      "{\"ranks\": %d, \"grad_mb\": %.2f, \"buckets\": %zu, \"step_ms\": %.1f, "
      "\"comm_in_flight_ms\": %.1f, \"hidden_share\": %.3f, \"exposed_wait_ms\": %.1f, "
      "\"standalone_allreduce_ms\": %.1f, \"hidden_vs_standalone\": %.3f, "
      "\"dp_allreduce_busbw_gbps\": %.3f, \"raw_allreduce_busbw_gbps\": %.3f, "
      "\"raw_per_bucket_busbw_gbps\": %.3f, \"raw_nonblocking_busbw_gbps\": %.3f, "
      "\"dp_vs_raw\": %.3f}\n",
      n, total / 1e6, r.bucket_bytes.size(), r.step_s * 1e3, r.comm_s * 1e3,
      r.comm_s > 0 ? r.hidden_s / r.comm_s : 0.0, r.wait_s * 1e3, bw.dp_s * 1e3,
      1.0 - r.wait_s / bw.dp_s, bus_gbps(total, n, bw.dp_s), bus_gbps(total, n, bw.raw_s),
      bus_gbps(total, n, bw.raw_buckets_s), bus_gbps(total, n, bw.raw_nonblocking_s),
      bw.raw_s / bw.dp_s);
  std::fflush(stdout);
}

}  // namespace

int run(int argc, char** argv) {
  Args a = parse(argc, argv);  // before MPI starts: a bad option needs no runtime
  dist::MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  dist::Timeline timeline(world->rank());
  StepResult r = train(a, *world, timeline);
  if (!a.trace.empty()) {
    timeline.write_chrome_trace(str_cat(a.trace, ".rank", world->rank(), ".json"));
  }
  // The rank that reaches finish_gradients() last waits only for communication; the other
  // one also waits for its peer's compute (ranks share the cores here), so take the minimum.
  MPI_Allreduce(MPI_IN_PLACE, &r.wait_s, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  Bandwidth bw = measure_bandwidth(*world, r.bucket_bytes, static_cast<int>(a.num.at("repeats")));
  if (world->rank() == 0) report(world->size(), r, bw);
  world->barrier();
  return 0;
}

}  // namespace strata

int main(int argc, char** argv) { return strata::bench::run_main(strata::run, argc, argv); }
