// Data-parallel step on CPU under mpirun: how much of the gradient all-reduce hides behind
// backward (from the per-rank timeline) and the bus bandwidth the bucketed all-reduce gets
// against a raw MPI_Allreduce of the same bytes, measured in the same run. One JSON line
// from rank 0. Run: mpirun -np 2 --oversubscribe -x OMP_NUM_THREADS=1 strata_dp_bench
//   [--layers=4 --width=384 --seq=64 --batch=4 --steps=6 --bucket_mb=25 --trace=PREFIX]
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

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
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto eq = s.find('=');
    check(s.rfind("--", 0) == 0 && eq != std::string::npos, "[dp_bench] bad argument '", s,
          "'; use --key=value");
    std::string key = s.substr(2, eq - 2), value = s.substr(eq + 1);
    if (key == "trace") {
      a.trace = value;
      continue;
    }
    check(a.num.count(key), "[dp_bench] unknown option --", key);
    a.num[key] = std::stod(value);
  }
  return a;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Bus bandwidth of an all-reduce (NCCL's convention): bytes * 2 (n - 1) / n / time.
double bus_gbps(double bytes, int n, double s) { return bytes * 2.0 * (n - 1) / n / s / 1e9; }

/// Seconds per round of all-reducing tensors of `sizes` bytes, launched back to back.
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

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  using namespace strata;
  dist::MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  Args a = parse(argc, argv);
  dist::Timeline timeline(world->rank());
  StepResult r = train(a, *world, timeline);
  if (!a.trace.empty()) {
    timeline.write_chrome_trace(str_cat(a.trace, ".rank", world->rank(), ".json"));
  }
  int n = world->size();
  int repeats = static_cast<int>(a.num.at("repeats"));
  int64_t total = 0;
  for (int64_t b : r.bucket_bytes) total += b;
  // The communicator's all-reduce (avg) of the step's buckets, back to back, no compute.
  std::vector<Tensor> bufs;
  for (int64_t b : r.bucket_bytes) bufs.push_back(ones({b / 4}));
  double comm_s = time_rounds(repeats, [&] {
    std::vector<dist::WorkPtr> works;
    for (Tensor& t : bufs) works.push_back(world->all_reduce_async(t, dist::ReduceOp::avg));
    for (auto& w : works) w->wait(world->timeout());
  });
  // Raw MPI: one blocking MPI_Allreduce of all the bytes, and one per bucket.
  Tensor flat = ones({total / 4});
  double raw_s = time_rounds(repeats, [&] {
    MPI_Allreduce(MPI_IN_PLACE, flat.raw_data(), static_cast<int>(total / 4), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
  });
  double raw_buckets_s = time_rounds(repeats, [&] {
    for (Tensor& t : bufs) {
      MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
    }
  });
  if (world->rank() == 0) {
    std::printf(
        "{\"ranks\": %d, \"grad_mb\": %.2f, \"buckets\": %zu, \"step_ms\": %.1f, "
        "\"comm_in_flight_ms\": %.1f, \"hidden_ms\": %.1f, \"hidden_share\": %.3f, "
        "\"exposed_wait_ms\": %.1f, \"dp_allreduce_busbw_gbps\": %.3f, "
        "\"raw_allreduce_busbw_gbps\": %.3f, \"raw_per_bucket_busbw_gbps\": %.3f, "
        "\"dp_vs_raw\": %.3f, \"in_step_busbw_gbps\": %.3f}\n",
        n, total / 1e6, r.bucket_bytes.size(), r.step_s * 1e3, r.comm_s * 1e3, r.hidden_s * 1e3,
        r.comm_s > 0 ? r.hidden_s / r.comm_s : 0.0, r.wait_s * 1e3, bus_gbps(total, n, comm_s),
        bus_gbps(total, n, raw_s), bus_gbps(total, n, raw_buckets_s), raw_s / comm_s,
        bus_gbps(total, n, r.comm_s));
  }
  world->barrier();
  return 0;
}
