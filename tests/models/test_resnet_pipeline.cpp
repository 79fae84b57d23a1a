// A CIFAR ResNet split into pipeline stages (stem, BasicBlocks, head; any contiguous split)
// trains like the unsplit model: 2 and 3 stages on thread ranks, GPipe and 1F1B, against one
// process running the same micro-batches one after another with gradient accumulation (so
// that BatchNorm sees the same micro-batch statistics). Losses, every parameter and the
// BatchNorm running statistics agree to f32 rounding.
#include <gtest/gtest.h>

#include <mutex>

#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/optim/sgd.h"
#include "distributed/pipeline/executor.h"
#include "distributed/pipeline/partition.h"
#include "distributed/thread_communicator.h"
#include "models/resnet.h"

namespace strata::models {
namespace {

namespace pl = dist::pipeline;

constexpr int64_t kMicrobatches = 4, kRows = 4, kSteps = 2;
// The stages run the micro-batches in the reference's order, so the results come out equal
// bit for bit (observed, printed); the bound only allows for a different summation order. A
// wrong split, a lost micro-batch or a missed gradient shows up as 1e-2 or more.
constexpr double kTolerance = 1e-5;

struct Batch {
  Tensor x, y;
};

Batch batch(int64_t step) {
  Generator g(100 + static_cast<uint64_t>(step));
  return {randn({kMicrobatches * kRows, 3, 16, 16}, g), randint(0, 10, {kMicrobatches * kRows}, g)};
}

Tensor rows(const Tensor& t, int64_t mb) { return t.slice(0, mb * kRows, (mb + 1) * kRows); }

/// The unsplit ResNet-8: per step, the micro-batches one after another, gradients summed
/// with weight 1/m, then one SGD step.
std::pair<std::vector<double>, nn::StateDict> reference() {
  Generator gen(7);
  CifarResNet model(8, 10, gen);
  optim::SGD opt(model.parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  std::vector<double> losses;
  for (int64_t s = 0; s < kSteps; ++s) {
    Batch b = batch(s);
    opt.zero_grad();
    double total = 0;
    for (int64_t mb = 0; mb < kMicrobatches; ++mb) {
      Tensor loss = cross_entropy(model.forward(rows(b.x, mb)), rows(b.y, mb));
      total += loss.item();
      (loss * (1.0 / kMicrobatches)).backward();
    }
    losses.push_back(total / kMicrobatches);
    opt.step();
  }
  return {losses, model.state_dict()};
}

double max_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to(DType::f64).to_vector<double>(),
                      y = b.to(DType::f64).to_vector<double>();
  double w = 0;
  for (size_t i = 0; i < x.size(); ++i) w = std::max(w, std::abs(x[i] - y[i]));
  return w;
}

void check_pipeline(pl::ScheduleKind kind, std::vector<int64_t> balance) {
  auto [ref_losses, ref_state] = reference();
  const int stages = static_cast<int>(balance.size());
  std::mutex mu;
  double worst = 0;
  size_t compared = 0;
  dist::run_thread_ranks(stages, [&](dist::Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    Generator gen(7);
    CifarResNet model(8, 10, gen);  // every rank builds it; each trains only its own blocks
    auto blocks = model.pipeline_blocks();
    auto range = pl::partition_by_balance(static_cast<int64_t>(blocks.size()),
                                          balance)[static_cast<size_t>(comm.rank())];
    auto stage = pl::stage_module(blocks, range);
    optim::SGD opt(stage->parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
    bool first = comm.rank() == 0, last = comm.rank() == stages - 1;
    Batch b;
    pl::ChunkFn chunk = [&](const Tensor& in, int64_t mb) {
      Tensor out = stage->forward(first ? rows(b.x, mb) : in);
      return last ? cross_entropy(out, rows(b.y, mb)) : out;
    };
    pl::PipelineExecutor exec(comm, {kind, stages, kMicrobatches, 1}, {chunk});
    for (int64_t s = 0; s < kSteps; ++s) {
      b = batch(s);
      opt.zero_grad();
      double loss = exec.run();
      opt.step();
      EXPECT_NEAR(loss, ref_losses[s], kTolerance) << "step " << s;
    }
    // Every tensor of this stage (parameters and BatchNorm statistics) by the model's name.
    std::lock_guard<std::mutex> lock(mu);
    std::vector<Tensor> mine;
    for (auto& t : stage->state_dict()) mine.push_back(t.second);
    for (auto& [name, t] : model.state_dict()) {
      bool held = false;
      for (const Tensor& m : mine) held = held || m.raw_data() == t.raw_data();
      if (!held) continue;
      ++compared;
      double d = max_diff(t, ref_state.at(name));
      EXPECT_LE(d, kTolerance) << name << " on stage " << comm.rank();
      worst = std::max(worst, d);
    }
  });
  EXPECT_EQ(compared, ref_state.size()) << "the stages together hold every tensor once";
  std::cout << "largest difference from the unsplit model: " << worst << " over " << compared
            << " tensors\n";
}

TEST(ResNetPipeline, BlocksChainToTheModel) {
  Generator gen(3);
  CifarResNet model(8, 10, gen);
  model.eval();
  Generator data(4);
  Tensor x = randn({2, 3, 16, 16}, data), h = x;
  auto blocks = model.pipeline_blocks();
  EXPECT_EQ(blocks.size(), 5u);  // stem, 3 BasicBlocks (n = 1), head
  for (const auto& blk : blocks) h = blk->forward(h);
  EXPECT_EQ(h.to_vector<float>(), model.forward(x).to_vector<float>());
}

TEST(ResNetPipeline, TwoStagesOneFOneBMatchTheUnsplitModel) {
  check_pipeline(pl::ScheduleKind::one_f_one_b, {2, 3});
}

TEST(ResNetPipeline, ThreeStagesGPipeMatchTheUnsplitModel) {
  check_pipeline(pl::ScheduleKind::gpipe, {1, 2, 2});
}

}  // namespace
}  // namespace strata::models
