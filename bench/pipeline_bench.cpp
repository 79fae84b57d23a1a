// Pipeline schedules on CPU under mpirun (one stage per rank): the bubble fraction measured
// from each rank's timeline against theory, and stage 0's peak activation memory from the
// allocator, for GPipe, 1F1B and interleaved 1F1B. One JSON line per (schedule, m) from rank 0.
// Run: bench/pipeline_bench.sh, or mpirun -np 2 --oversubscribe -x OMP_NUM_THREADS=1
//   -x OPENBLAS_NUM_THREADS=1 strata_pipeline_bench [--blocks_per_stage=4 --width=512
//   --rows=64 --v=2 --steps=3 --warmup=1 --trace=PREFIX]
// Figures are trustworthy only when every rank has its own core and its compute is not
// stretched by other processes ("trustworthy" and "inflation" in the output): time-sliced
// ranks stretch each other's compute, and a waiting rank spins. Memory figures always hold.
// --wait_ms=W (> 0) adds to every block a timed wait of W ms forward and 2W backward: the
// blocks then cost wall time without needing a core, so that 4 ranks on a 2-core machine
// measure the schedule, the executor and the MPI transfers rather than the time-slicing (the
// Linear + GELU compute stays, and is small next to W with --width=64).
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "bench/bench_args.h"
#include "core/autograd/node.h"
#include "core/backend/backend.h"
#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/linear.h"
#include "core/ops.h"
#include "distributed/mpi_communicator.h"
#include "distributed/pipeline/executor.h"
#include "distributed/pipeline/partition.h"

namespace strata {
namespace {

namespace pp = dist::pipeline;
using Clock = std::chrono::steady_clock;

struct Args {
  std::map<std::string, double> num = {
      {"blocks_per_stage", 4}, {"width", 512}, {"rows", 64}, {"v", 2}, {"steps", 3},
      {"warmup", 1},           {"wait_ms", 0}};
  std::string trace;  // prefix: PREFIX.<schedule>.m<m>.rank<r>.json per rank
};

Args parse(int argc, char** argv) {
  Args a;
  bench::BenchArgs parsed =
      bench::parse_bench_args(argc, argv, "pipeline_bench", {a.num, {{"trace", a.trace}}});
  a.num = parsed.num;
  a.trace = parsed.str.at("trace");
  return a;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

/// The identity, after sleeping `fwd_ms`; its backward passes the gradient on after `bwd_ms`.
Tensor timed_wait(const Tensor& x, double fwd_ms, double bwd_ms) {
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(fwd_ms));
  Tensor out = x.detach().clone();
  return record("timed_wait", out, {x}, [bwd_ms](const Tensor& g) {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(bwd_ms));
    return std::vector<Tensor>{g};
  });
}

/// A Linear + GELU block, followed by a timed wait when wait_ms > 0 (see the file comment).
class Block : public nn::Layer {
 public:
  Block(int64_t width, double wait_ms, Generator& gen)
      : linear_(register_module(
            "linear", std::make_shared<nn::Linear>(nn::LinearOptions{width, width}, gen))),
        wait_ms_(wait_ms) {}
  Tensor forward(const Tensor& x) override {
    Tensor y = gelu(linear_->forward(x));
    return wait_ms_ > 0 ? timed_wait(y, wait_ms_, 2 * wait_ms_) : y;
  }

 private:
  std::shared_ptr<nn::Linear> linear_;
  double wait_ms_;
};

/// This rank's chunks of a stack of identical Linear(W, W) + GELU blocks (f32), split evenly
/// over the virtual stages; the last one returns the mean square of its output as the loss.
std::vector<pp::ChunkFn> make_chunks(const Args& a, const pp::ScheduleOptions& o, int rank,
                                     std::vector<Tensor>& params) {
  auto n = [&](const char* k) { return static_cast<int64_t>(a.num.at(k)); };
  int64_t per_vs = std::max<int64_t>(1, n("blocks_per_stage") / o.virtual_stages);
  int64_t vstages = o.stages * o.virtual_stages, w = n("width"), rows = n("rows");
  Generator gen(1);
  std::vector<std::shared_ptr<nn::Layer>> blocks;
  for (int64_t i = 0; i < per_vs * vstages; ++i) {
    blocks.push_back(std::make_shared<Block>(w, a.num.at("wait_ms"), gen));
  }
  auto ranges = pp::partition_by_balance(static_cast<int64_t>(blocks.size()),
                                         std::vector<int64_t>(vstages, per_vs));
  Tensor x = randn({o.microbatches * rows, w}, gen);  // (m * rows, W)
  std::vector<pp::ChunkFn> chunks;
  for (int64_t c = 0; c < o.virtual_stages; ++c) {
    int64_t vs = pp::virtual_stage_of(o.stages, rank, c);
    auto module = pp::stage_module(blocks, ranges[vs]);
    for (const Tensor& t : module->parameters()) params.push_back(t);
    bool first = vs == 0, last = vs == vstages - 1;
    chunks.push_back([=](const Tensor& in, int64_t mb) {
      Tensor out = module->forward(first ? x.slice(0, mb * rows, (mb + 1) * rows) : in);
      return last ? mean(out * out) : out;
    });
  }
  return chunks;
}

struct Measured {
  double step_s = 0;          // makespan: first rank's start to last rank's end
  double bubble = 0;          // 1 - sum(busy) / (p * makespan)
  double forward_s = 0;       // mean chunk forward, over ranks
  double forward_min_s = 0;   // the fastest chunk forward (the uncontended time)
  double backward_s = 0;      // mean chunk backward, over ranks
  double peak_stage0_mb = 0;  // stage 0's peak over its baseline (gradients already exist)
  double peak_max_mb = 0;     // the largest stage's
};

/// Per-rank compute time of the step and the mean forward and backward span.
void add_spans(const dist::Timeline& tl, double& busy, double& fwd, double& bwd, double& nf,
               double& nb, double& fwd_min) {
  for (const dist::Span& s : tl.spans()) {
    if (s.category != "compute") continue;
    double d = (s.end_us - s.start_us) * 1e-6;
    busy += d;
    (s.name[0] == 'F' ? fwd : bwd) += d;
    (s.name[0] == 'F' ? nf : nb) += 1;
    if (s.name[0] == 'F') fwd_min = std::min(fwd_min, d);
  }
}

Measured measure(const Args& a, dist::Communicator& world, const pp::ScheduleOptions& o) {
  int p = world.size(), steps = static_cast<int>(a.num.at("steps"));
  std::vector<Tensor> params;
  auto timeline = std::make_shared<dist::Timeline>(world.rank());
  pp::ExecutorOptions eo;
  eo.timeline = timeline;
  pp::PipelineExecutor exec(world, o, make_chunks(a, o, world.rank(), params), eo);
  for (int i = 0; i < a.num.at("warmup"); ++i) exec.run();
  Measured m;
  double busy_sum = 0, span_sum = 0, f[4] = {0, 0, 0, 0};  // forward s, backward s, counts
  int64_t peak = 0;
  double fwd_min = 1e30;
  for (int step = 0; step < steps; ++step) {
    timeline->clear();
    int64_t base = cpu_backend().memory_stats(Device::cpu()).current_bytes;
    cpu_backend().reset_peak(Device::cpu());
    world.barrier();
    int64_t t[2] = {-now_us(), 0};
    exec.run();
    t[1] = now_us();
    peak = std::max(peak, cpu_backend().memory_stats(Device::cpu()).peak_bytes - base);
    MPI_Allreduce(MPI_IN_PLACE, t, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    double busy = 0;
    add_spans(*timeline, busy, f[0], f[1], f[2], f[3], fwd_min);
    MPI_Allreduce(MPI_IN_PLACE, &busy, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double span = (t[1] + t[0]) * 1e-6;  // latest end - earliest start
    busy_sum += busy;
    span_sum += span;
  }
  if (!a.trace.empty()) {
    timeline->write_chrome_trace(str_cat(a.trace, ".", pp::schedule_kind_name(o.kind), ".m",
                                         o.microbatches, ".rank", world.rank(), ".json"));
  }
  MPI_Allreduce(MPI_IN_PLACE, f, 4, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &fwd_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  m.forward_min_s = fwd_min;
  m.step_s = span_sum / steps;
  m.bubble = 1 - busy_sum / (p * span_sum);
  m.forward_s = f[0] / f[2];
  m.backward_s = f[1] / f[3];
  double mb = static_cast<double>(peak) / (1 << 20), top = mb;
  MPI_Allreduce(MPI_IN_PLACE, &top, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  MPI_Bcast(&mb, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  m.peak_stage0_mb = mb;
  m.peak_max_mb = top;
  return m;
}

/// One JSON line. The figures are trustworthy when each rank has a core and its compute is
/// not stretched: forward spans average under 1.25x the fastest one ("inflation").
void report(const pp::ScheduleOptions& o, const Measured& r, bool core_per_rank, double wait_ms) {
  double theory = pp::theoretical_bubble(o);
  double inflation = r.forward_s / r.forward_min_s;
  // Timed waits need no core; what they measure holds while the spans are not stretched.
  bool trustworthy = (core_per_rank || wait_ms > 0) && inflation < 1.25;
  std::printf(
      "{\"ranks\": %d, \"compute\": \"%s\", \"schedule\": \"%s\", \"m\": %lld, \"v\": %lld, "
      "\"step_ms\": %.2f, "
      "\"bubble_measured\": %.4f, \"bubble_theory\": %.4f, \"diff_pp\": %.2f, "
      "\"fwd_ms\": %.3f, \"bwd_ms\": %.3f, \"inflation\": %.2f, "
      "\"peak_act_mb_stage0\": %.2f, \"peak_act_mb_max_stage\": %.2f, \"trustworthy\": %s}\n",
      o.stages, wait_ms > 0 ? "timed_wait" : "real", pp::schedule_kind_name(o.kind),
      (long long)o.microbatches, (long long)o.virtual_stages, r.step_s * 1e3, r.bubble, theory,
      (r.bubble - theory) * 100, r.forward_s * 1e3, r.backward_s * 1e3, inflation, r.peak_stage0_mb,
      r.peak_max_mb, trustworthy ? "true" : "false");
  std::fflush(stdout);
}

}  // namespace

int run(int argc, char** argv) {
  Args a = parse(argc, argv);  // before MPI starts: a bad option needs no runtime
  dist::MpiRuntime runtime(&argc, &argv);
  auto world = runtime.world();
  int p = world->size();
  // Ranks share this machine's cores (one node): figures need a core per rank.
  int threads = omp_get_max_threads();
  bool core_per_rank = static_cast<int>(std::thread::hardware_concurrency()) >= p * threads;
  if (world->rank() == 0 && !core_per_rank && a.num.at("wait_ms") <= 0) {
    std::fprintf(stderr,
                 "pipeline_bench: %d ranks x %d threads on %u cores are time-sliced; the "
                 "bubble and step times are not trustworthy (memory figures are)\n",
                 p, threads, std::thread::hardware_concurrency());
  }
  auto v = static_cast<int64_t>(a.num.at("v"));
  for (int64_t m : {8, 4}) {
    for (pp::ScheduleKind kind :
         {pp::ScheduleKind::gpipe, pp::ScheduleKind::one_f_one_b, pp::ScheduleKind::interleaved}) {
      pp::ScheduleOptions o{kind, p, m, kind == pp::ScheduleKind::interleaved ? v : 1};
      if (kind == pp::ScheduleKind::interleaved && m % p != 0) continue;  // not schedulable
      Measured r = measure(a, *world, o);
      if (world->rank() == 0) report(o, r, core_per_rank, a.num.at("wait_ms"));
    }
  }
  world->barrier();
  return 0;
}

}  // namespace strata

int main(int argc, char** argv) { return strata::bench::run_main(strata::run, argc, argv); }
