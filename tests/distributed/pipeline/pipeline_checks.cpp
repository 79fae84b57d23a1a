// The pipeline equivalence check: every rank also trains the unsplit reference model (small)
// so that it can compare its own stage's parameters with the matching reference blocks.
#include "tests/distributed/pipeline/pipeline_checks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/linear.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/optim/sgd.h"
#include "core/random.h"
#include "distributed/pipeline/executor.h"
#include "distributed/pipeline/partition.h"

namespace strata::dist::testing {
namespace {

constexpr int64_t kWidth = 8;
constexpr int64_t kBlocks = 8;  // 7 Linear+GELU blocks and a final Linear
constexpr int64_t kGlobalBatch = 24;
constexpr int kSteps = 3;

std::vector<std::shared_ptr<nn::Layer>> make_blocks(DType dtype) {
  Generator gen(11);
  std::vector<std::shared_ptr<nn::Layer>> blocks;
  for (int64_t i = 0; i + 1 < kBlocks; ++i) {
    auto block = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
        std::make_shared<nn::Linear>(nn::LinearOptions{kWidth, kWidth}, gen),
        std::make_shared<nn::GELU>()});
    block->to(dtype);
    blocks.push_back(block);
  }
  auto head = std::make_shared<nn::Linear>(nn::LinearOptions{kWidth, 2}, gen);
  head->to(dtype);
  blocks.push_back(head);
  // The default init shrinks activations block by block; doubling every weight keeps the
  // first blocks' gradients large enough that a lost gradient would show.
  for (const auto& b : blocks)
    for (Tensor t : b->parameters()) mul_(t, 2.0);
  return blocks;
}

optim::SGDOptions sgd_options() {
  optim::SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  return o;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to(DType::f64).to_vector<double>();
  std::vector<double> y = b.to(DType::f64).to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// The unsplit model on the whole batch: the loss of each step and the final blocks.
std::vector<double> train_reference(const std::vector<std::shared_ptr<nn::Layer>>& blocks,
                                    const Tensor& x, const Tensor& y) {
  nn::Sequential model;
  for (const auto& b : blocks) model.push_back(b);
  optim::SGD opt(model.parameters(), sgd_options());
  std::vector<double> losses;
  for (int step = 0; step < kSteps; ++step) {
    opt.zero_grad();
    Tensor loss = mse_loss(model.forward(x), y);
    losses.push_back(loss.item());
    loss.backward();
    opt.step();
  }
  return losses;
}

}  // namespace

double check_pipeline_matches_single_process(Communicator& comm, const PipeCase& c) {
  int p = comm.size();
  int64_t v = c.virtual_stages, m = c.microbatches, mb_size = kGlobalBatch / m;
  Generator data_gen(5);
  Tensor x = randn({kGlobalBatch, kWidth}, data_gen).to(c.dtype);  // (B, 8)
  Tensor y = randn({kGlobalBatch, 2}, data_gen).to(c.dtype);       // (B, 2)
  auto reference = make_blocks(c.dtype);
  std::vector<double> ref_losses = train_reference(reference, x, y);

  // This rank's chunks: virtual stage c*p + rank of a split by parameter count.
  auto blocks = make_blocks(c.dtype);
  auto ranges = pipeline::partition_by_balance(
      kBlocks, pipeline::balance_by_parameters(blocks, static_cast<int>(p * v)));
  std::vector<std::shared_ptr<nn::Sequential>> modules;
  std::vector<pipeline::ChunkFn> chunks;
  std::vector<Tensor> params;
  for (int64_t chunk = 0; chunk < v; ++chunk) {
    int64_t vs = pipeline::virtual_stage_of(p, comm.rank(), chunk);
    auto module = pipeline::stage_module(blocks, ranges[vs]);
    for (const Tensor& t : module->parameters()) params.push_back(t);
    bool first = vs == 0, last = vs == p * v - 1;
    chunks.push_back([=](const Tensor& input, int64_t mb) {
      Tensor in = first ? x.slice(0, mb * mb_size, (mb + 1) * mb_size) : input;
      Tensor out = module->forward(in);
      return last ? mse_loss(out, y.slice(0, mb * mb_size, (mb + 1) * mb_size)) : out;
    });
    modules.push_back(module);
  }
  pipeline::ScheduleOptions options{c.kind, p, m, v};
  pipeline::PipelineExecutor exec(comm, options, chunks);
  optim::SGD opt(params, sgd_options());
  double worst = 0;
  for (int step = 0; step < kSteps; ++step) {
    opt.zero_grad();
    double loss = exec.run();
    opt.step();
    worst = std::max(worst, std::abs(loss - ref_losses[step]));
    EXPECT_NEAR(loss, ref_losses[step], c.tolerance) << "rank " << comm.rank() << " step " << step;
  }
  // Every stage's parameters moved: gradients reached the first stage too.
  auto initial = make_blocks(c.dtype);
  for (int64_t chunk = 0; chunk < v; ++chunk) {
    const auto& range = ranges[pipeline::virtual_stage_of(p, comm.rank(), chunk)];
    EXPECT_GT(
        max_abs_diff(blocks[range.begin]->parameters()[0], initial[range.begin]->parameters()[0]),
        1e-3)
        << "rank " << comm.rank() << " block " << range.begin << " did not train";
  }
  for (int64_t chunk = 0; chunk < v; ++chunk) {
    const auto& range = ranges[pipeline::virtual_stage_of(p, comm.rank(), chunk)];
    for (int64_t b = range.begin; b < range.end; ++b) {
      auto mine = blocks[b]->named_parameters(), ref = reference[b]->named_parameters();
      for (size_t i = 0; i < mine.size(); ++i) {
        double d = max_abs_diff(mine[i].second, ref[i].second);
        worst = std::max(worst, d);
        EXPECT_LE(d, c.tolerance) << "rank " << comm.rank() << " block " << b << " "
                                  << mine[i].first;
      }
    }
  }
  return worst;
}

}  // namespace strata::dist::testing
