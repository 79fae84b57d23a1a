// CIFAR ResNet-20: forward and backward on a CIFAR batch shape, its size, and SyncBatchNorm
// (through the model's norm factory) on thread ranks equal to one process on the global batch.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "core/ops/loss.h"
#include "core/optim/sgd.h"
#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "distributed/thread_communicator.h"
#include "models/resnet.h"

namespace strata::models {
namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to(DType::f64).contiguous().to_vector<double>();
  std::vector<double> y = b.to(DType::f64).contiguous().to_vector<double>();
  double worst = x.size() == y.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

TEST(ResNet, Resnet20TrainsOnACifarBatch) {
  Generator gen(0);
  CifarResNet net(20, 10, gen);
  // Option B shortcuts: conv1 432 + bn 32, layer1 3 x (2 x 2304 + 2 x 32) = 14016, layer2
  // 14528 + 2 x 18560 = 51648, layer3 57728 + 2 x 73984 = 205696, fc 650.
  EXPECT_EQ(net.num_parameters(), 272474);
  EXPECT_EQ(net.named_buffers().size(), 21u * 3);  // 21 batch norms: mean, var, count
  Generator data(1);
  Tensor x = randn({8, 3, 32, 32}, data);  // (B, 3, 32, 32), a CIFAR batch
  Tensor y = randint(0, 10, {8}, data);
  Tensor logits = net.forward(x);
  ASSERT_EQ(logits.shape(), (Shape{8, 10}));
  Tensor loss = cross_entropy(logits, y);
  // Kaiming init and a zero-mean input: the initial loss is near log(10) = 2.30.
  EXPECT_GT(loss.item(), 1.5);
  EXPECT_LT(loss.item(), 4.0);
  loss.backward();
  for (auto& [name, p] : net.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    double norm = sum(mul(p.grad(), p.grad())).item();
    EXPECT_TRUE(std::isfinite(norm) && norm > 0) << name << " gradient norm^2 " << norm;
  }
  // Training updated the running statistics; eval mode uses them (other outputs).
  Tensor mean = net.named_buffers()[0].second;
  EXPECT_GT(sum(abs(mean)).item(), 0.0);
  net.eval();
  EXPECT_GT(max_abs_diff(net.forward(x), logits), 1e-3);
}

TEST(ResNet, DepthMustBe6nPlus2) {
  Generator gen(0);
  try {
    CifarResNet net(21, 10, gen);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[ResNet] CIFAR depth must be 6n+2 (20, 32, 44, 56, 110), got 21");
  }
}

// ResNet-20 in f64 with SyncBatchNorm over 2 and 3 thread ranks, each on its rows of a global
// batch of 12 (3 x 16 x 16), against BatchNorm2d in one process on the whole batch: after 2
// SGD steps every parameter and running statistic agrees to f64 rounding (observed at most
// 6.7e-16 on 2 and 3 ranks; checked at 1e-12).
class ResNetSyncBn : public ::testing::TestWithParam<int> {};

TEST_P(ResNetSyncBn, MatchesOneProcessOnTheGlobalBatch) {
  const int64_t batch = 12;
  auto step_data = [&](int step) {
    Generator g(100 + static_cast<uint64_t>(step));
    return std::make_pair(randn({batch, 3, 16, 16}, g, DType::f64), randint(0, 10, {batch}, g));
  };
  optim::SGDOptions sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4};
  Generator ref_gen(3);
  CifarResNet reference(20, 10, ref_gen);
  reference.to(DType::f64);
  optim::SGD ref_opt(reference.trainable_parameters(), sgd);
  for (int step = 0; step < 2; ++step) {
    auto [x, y] = step_data(step);
    ref_opt.zero_grad();
    cross_entropy(reference.forward(x), y).backward();
    ref_opt.step();
  }
  dist::run_thread_ranks(GetParam(), [&](dist::Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    std::shared_ptr<dist::Communicator> shared(&comm, [](dist::Communicator*) {});
    NormFactory sync = [&](int64_t c) -> std::shared_ptr<nn::BatchNorm> {
      return std::make_shared<dist::SyncBatchNorm>(nn::BatchNormOptions{.num_features = c}, shared);
    };
    Generator gen(3 + static_cast<uint64_t>(comm.rank()));  // DP broadcasts rank 0's weights
    CifarResNet replica(20, 10, gen, sync);
    replica.to(DType::f64);
    dist::DataParallel dp(replica, shared);
    optim::SGD opt(replica.trainable_parameters(), sgd);
    int64_t rows = batch / comm.size(), lo = comm.rank() * rows;
    for (int step = 0; step < 2; ++step) {
      auto [x, y] = step_data(step);
      opt.zero_grad();
      cross_entropy(replica.forward(x.slice(0, lo, lo + rows).contiguous()),
                    y.slice(0, lo, lo + rows).contiguous())
          .backward();
      dp.finish_gradients();
      opt.step();
    }
    auto want = reference.state_dict();
    auto got = replica.state_dict();
    ASSERT_EQ(got.size(), want.size());  // the same names: checkpoints are interchangeable
    for (const auto& [name, t] : want) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_LE(max_abs_diff(got.at(name), t), 1e-12) << name << " on rank " << comm.rank();
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, ResNetSyncBn, ::testing::Values(2, 3));

}  // namespace
}  // namespace strata::models
