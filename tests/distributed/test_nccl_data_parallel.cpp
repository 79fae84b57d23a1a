// Issue 4's GPU test: an MLP on CUDA (linear + gelu, MSE or cross-entropy) trained 3 steps
// with DataParallel, or with ZeRO-1, over a one-rank NCCL communicator equals the same model
// trained without them; ZeRO's state leaves as host tensors and comes back; the global
// gradient norm on CUDA equals the CPU's. Labels unit and cuda: it runs on every machine,
// skipping (with the reason) the parts that need a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/backend/cuda/availability.h"
#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/linear.h"
#include "core/ops.h"
#include "core/optim/adam.h"
#include "core/optim/sgd.h"
#include "distributed/data_parallel.h"
#include "distributed/grad_clip.h"
#include "distributed/nccl_communicator.h"
#include "distributed/pipeline/executor.h"
#include "distributed/zero.h"
#include "tests/support/values.h"

namespace strata::dist {
namespace {

constexpr int64_t kBatch = 12;

std::shared_ptr<nn::Sequential> make_mlp(int64_t out_features) {
  Generator gen(7);
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{8, 32}, gen));
  m->push_back(std::make_shared<nn::GELU>());
  m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{32, out_features}, gen));
  m->to(Device::cuda(0));
  return m;
}

struct Batch {
  Tensor x, y;
};

Batch batch(const std::string& loss, int step) {
  Generator gen(500 + step);
  Tensor x = randn({kBatch, 8}, gen);
  Tensor y = loss == "mse" ? randn({kBatch, 4}, gen) : randint(0, 5, {kBatch}, gen);
  return {x.to(Device::cuda(0)), y.to(Device::cuda(0))};
}

/// Three steps of `m` (SGD with momentum, or AdamW), all-reducing through `dp` when given.
void train(nn::Sequential& m, const std::string& loss, const std::string& optimizer,
           DataParallel* dp) {
  std::unique_ptr<optim::Optimizer> opt;
  if (optimizer == "sgd") {
    opt = std::make_unique<optim::SGD>(m.parameters(),
                                       optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
  } else {
    optim::AdamWOptions o;
    o.lr = 1e-2;
    o.weight_decay = 0.01;
    opt = std::make_unique<optim::AdamW>(m.parameters(), o);
  }
  for (int step = 0; step < 3; ++step) {
    const Batch b = batch(loss, step);
    opt->zero_grad();
    Tensor out = m.forward(b.x);
    (loss == "mse" ? mse_loss(out, b.y) : cross_entropy(out, b.y)).backward();
    if (dp) dp->finish_gradients();
    opt->step();
  }
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
  return d;
}

struct Run {
  const char* loss;
  const char* optimizer;
};
void PrintTo(const Run& r, std::ostream* os) { *os << r.loss << " + " << r.optimizer; }

class NcclDataParallel : public ::testing::TestWithParam<Run> {};

TEST_P(NcclDataParallel, OneRankMatchesNoDp) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  const auto [loss, optimizer] = GetParam();
  const int64_t outs = std::string(loss) == "mse" ? 4 : 5;
  auto plain = make_mlp(outs);
  auto initial = make_mlp(outs);
  train(*plain, loss, optimizer, nullptr);

  auto single = make_single_communicator();
  std::shared_ptr<Communicator> nccl = make_nccl_communicator(*single, 0);
  ASSERT_STREQ(nccl->backend(), "nccl");
  ASSERT_EQ(nccl->size(), 1);
  auto replica = make_mlp(outs);
  // One rank would leave the gradients alone (they are the average): send them through the
  // buckets and NCCL's all-reduce anyway, which is what this test is for.
  DataParallel dp(*replica, nccl, DataParallelOptions{.skip_single_rank = false});
  train(*replica, loss, optimizer, &dp);

  auto want = plain->named_parameters(), got = replica->named_parameters(),
       init = initial->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].second.device().is_cuda()) << got[i].first;
    // Averaging over one rank is exact: DP (its buckets and NCCL's all-reduce, forced above)
    // must not change a single bit.
    EXPECT_EQ(max_abs_diff(got[i].second, want[i].second), 0.0) << got[i].first;
    EXPECT_GT(max_abs_diff(got[i].second, init[i].second), 1e-4)
        << got[i].first << " did not train";
  }
}

INSTANTIATE_TEST_SUITE_P(Mlp, NcclDataParallel,
                         ::testing::Values(Run{"mse", "sgd"}, Run{"cross_entropy", "adamw"}),
                         [](const auto& info) {
                           return std::string(info.param.loss) + "_" + info.param.optimizer;
                         });

/// One step of `m` on step `step`'s cross-entropy batch, through `opt` (an optimizer or ZeRO).
template <class Opt>
void adamw_step(nn::Sequential& m, Opt& opt, int step) {
  const Batch b = batch("cross_entropy", step);
  opt.zero_grad();
  cross_entropy(m.forward(b.x), b.y).backward();
  opt.step();
}

std::unique_ptr<ZeroOptimizer> make_zero(nn::Sequential& m, std::shared_ptr<Communicator> comm) {
  optim::AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  return std::make_unique<ZeroOptimizer>(
      std::vector<optim::ParamGroup>{{m.parameters(), {}, {}, {}}}, std::move(comm),
      [o](std::vector<optim::ParamGroup> groups) {
        return std::make_unique<optim::AdamW>(std::move(groups), o);
      });
}

// ZeRO-1 on CUDA: its flat buffers on the GPU, the reduce-scatter and all-gather through NCCL.
// Over one rank it must not change a bit, and its exported state (on the host, as a checkpoint
// holds it) imported into a fresh ZeRO continues exactly.
TEST(NcclZero, OneRankMatchesThePlainOptimizerAndResumes) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  auto plain = make_mlp(5);
  optim::AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  optim::AdamW plain_opt(plain->parameters(), o);
  for (int step = 0; step < 4; ++step) adamw_step(*plain, plain_opt, step);

  auto single = make_single_communicator();
  std::shared_ptr<Communicator> nccl = make_nccl_communicator(*single, 0);
  auto sharded = make_mlp(5);
  auto zero = make_zero(*sharded, nccl);
  for (int step = 0; step < 3; ++step) adamw_step(*sharded, *zero, step);
  std::vector<std::string> names;
  for (auto& [name, p] : sharded->named_parameters()) names.push_back(name);
  ShardState exported = zero->export_state(names);
  std::map<std::string, Tensor> host;
  for (auto& [k, t] : exported.whole) host[k] = t.to(Device::cpu());
  for (auto& [k, sl] : exported.slices) host[k] = sl.values.to(Device::cpu()).reshape(sl.shape);
  auto fresh = make_zero(*sharded, nccl);
  fresh->import_state(names, host);
  adamw_step(*sharded, *fresh, 3);

  auto want = plain->named_parameters(), got = sharded->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].second.device().is_cuda()) << got[i].first;
    EXPECT_EQ(max_abs_diff(got[i].second, want[i].second), 0.0) << got[i].first;
  }
}

// Gradients on CUDA: the p-norm (replicated, and sharded through NCCL's all-reduce) equals the
// CPU's, and clipping scales them as on the CPU.
TEST(NcclGradNorm, CudaMatchesCpu) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  auto single = make_single_communicator();
  std::shared_ptr<Communicator> nccl = make_nccl_communicator(*single, 0);
  Generator gen(3);
  std::vector<Tensor> cpu_grads{randn({100}, gen), randn({7, 9}, gen), Tensor(), randn({3}, gen)};
  std::vector<Tensor> gpu_grads;
  for (const Tensor& g : cpu_grads) gpu_grads.push_back(g.defined() ? g.to(Device::cuda(0)) : g);
  for (double p : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
    const double want = global_grad_norm(cpu_grads, p, *single, GradSharding::replicated);
    for (GradSharding s : {GradSharding::replicated, GradSharding::sharded}) {
      const double got = global_grad_norm(gpu_grads, p, *nccl, s);
      EXPECT_NEAR(got, want, 1e-6 * want) << "p = " << p;
    }
  }
}

// The pipeline executor on CUDA (one stage, two micro-batches, recompute off and on): the last
// stage's backward seed must live on the loss's device, and the gradients must equal one plain
// backward of the mean micro-batch loss.
TEST(CudaPipeline, OneStageExecutorMatchesPlainBackward) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  for (bool recompute : {false, true}) {
    auto single = make_single_communicator();
    auto piped = make_mlp(5), plain = make_mlp(5);
    const Batch b0 = batch("cross_entropy", 0), b1 = batch("cross_entropy", 1);
    pipeline::ScheduleOptions o;
    o.stages = 1;
    o.microbatches = 2;
    pipeline::ExecutorOptions eo;
    eo.recompute = recompute;
    pipeline::PipelineExecutor exec(*single, o, {[&](const Tensor&, int64_t mb) {
      const Batch& b = mb == 0 ? b0 : b1;
      return cross_entropy(piped->forward(b.x), b.y);
    }},
                                    eo);
    const double loss = exec.run();
    Tensor want =
        (cross_entropy(plain->forward(b0.x), b0.y) + cross_entropy(plain->forward(b1.x), b1.y)) *
        0.5;
    want.backward();
    EXPECT_NEAR(loss, want.item(), 1e-6) << "recompute " << recompute;
    auto got = piped->named_parameters(), ref = plain->named_parameters();
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(got[i].second.grad().defined()) << got[i].first;
      EXPECT_LT(max_abs_diff(got[i].second.grad(), ref[i].second.grad()), 1e-6) << got[i].first;
    }
  }
}

// Every collective over one NCCL rank is the identity: CUDA buffers go through NCCL's
// all-reduce (sum, avg, max), all-gather, reduce-scatter and broadcast unchanged.
TEST(NcclCommunicator, OneRankCollectivesAreTheIdentity) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  auto single = make_single_communicator();
  std::shared_ptr<Communicator> nccl = make_nccl_communicator(*single, 0);
  Generator gen(11);
  for (DType t : {DType::f32, DType::f64}) {
    const Tensor host = randn({37}, gen).to(t);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
      Tensor x = host.to(Device::cuda(0));
      nccl->all_reduce(x, op);
      EXPECT_EQ(max_abs_diff(x.to(Device::cpu()), host), 0.0) << dtype_name(t);
    }
    const Tensor in = host.to(Device::cuda(0));
    Tensor gathered = zeros({37}, t, Device::cuda(0)), scattered = zeros({37}, t, Device::cuda(0));
    nccl->all_gather(in, gathered);
    nccl->reduce_scatter(in, scattered, ReduceOp::avg);
    Tensor b = host.to(Device::cuda(0));
    nccl->broadcast(b, 0);
    for (const Tensor* r : {&gathered, &scattered, &b}) {
      EXPECT_EQ(max_abs_diff(r->to(Device::cpu()), host), 0.0) << dtype_name(t);
    }
  }
}

// A device that is not there is refused with the reason: without a GPU (or without CUDA in
// the build) cuda:0, on the GPU machine cuda:99.
TEST(NcclCommunicator, MissingDeviceFailsWithOneClearError) {
  const bool gpu = cuda_unavailable_reason().empty();
  const int device = gpu ? 99 : 0;
  auto single = make_single_communicator();
  const std::string msg = testing::message_of([&] { make_nccl_communicator(*single, device); });
  EXPECT_EQ(msg.rfind("[nccl] ", 0), 0u) << msg;
  const std::string want = nccl_available() ? str_cat("cuda:", device, " is not available")
                                            : std::string("this build of strata has no CUDA");
  EXPECT_NE(msg.find(want), std::string::npos) << msg;
}

}  // namespace
}  // namespace strata::dist
