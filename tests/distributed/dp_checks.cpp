// The models are tiny (an MLP, a conv net) so that every rank can also train the
// single-process reference on the whole global batch.
#include "tests/distributed/dp_checks.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/conv.h"
#include "core/nn/linear.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"
#include "core/optim/sgd.h"
#include "distributed/data_parallel.h"

namespace strata::dist::testing {

std::shared_ptr<nn::Sequential> make_model(const std::string& kind, uint64_t seed, DType dtype) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential>();
  if (kind == "mlp") {
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{8, 16}, gen));
    m->push_back(std::make_shared<nn::ReLU>());
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{16, 4}, gen));
  } else {
    m->push_back(std::make_shared<nn::Conv2d>(
        nn::Conv2dOptions{
            .in_channels = 2, .out_channels = 4, .kernel_size = {3, 3}, .padding = {1, 1}},
        gen));
    m->push_back(std::make_shared<nn::ReLU>());
    m->push_back(std::make_shared<nn::Flatten>());
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{4 * 6 * 6, 3}, gen));
  }
  m->to(dtype);
  return m;
}

Batch global_batch(const std::string& kind, int step, DType dtype) {
  Generator gen(1000 + step);
  if (kind == "mlp") {
    return {randn({kGlobalBatch, 8}, gen).to(dtype), randn({kGlobalBatch, 4}, gen).to(dtype)};
  }
  return {randn({kGlobalBatch, 2, 6, 6}, gen).to(dtype), randint(0, 3, {kGlobalBatch}, gen)};
}

/// Rows [begin, end) of a batch.
Batch rows(const Batch& b, int64_t begin, int64_t end) {
  return {b.x.slice(0, begin, end).contiguous(), b.y.slice(0, begin, end).contiguous()};
}

Tensor loss_of(const std::string& kind, nn::Sequential& m, const Batch& b) {
  Tensor out = m.forward(b.x);
  return kind == "mlp" ? mse_loss(out, b.y) : cross_entropy(out, b.y);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>();
  auto y = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

namespace {

constexpr int kSteps = 3;

optim::SGDOptions sgd_options() { return {.lr = 0.1, .momentum = 0.9}; }

/// One process, whole global batch.
std::shared_ptr<nn::Sequential> train_reference(const DpCase& c) {
  auto model = make_model(c.model, 7, c.dtype);
  optim::SGD opt(model->trainable_parameters(), sgd_options());
  for (int step = 0; step < kSteps; ++step) {
    opt.zero_grad();
    loss_of(c.model, *model, global_batch(c.model, step, c.dtype)).backward();
    opt.step();
  }
  return model;
}

std::shared_ptr<nn::Sequential> train_data_parallel(Communicator& comm, const DpCase& c) {
  auto model = make_model(c.model, 7 + comm.rank(), c.dtype);  // rank 0's state wins
  DataParallel dp(*model, std::shared_ptr<Communicator>(&comm, [](Communicator*) {}),
                  {.bucket_bytes = c.bucket_bytes, .first_bucket_bytes = c.bucket_bytes});
  optim::SGD opt(model->trainable_parameters(), sgd_options());
  int64_t local = kGlobalBatch / comm.size();
  int64_t micro = local / c.micro_steps;
  for (int step = 0; step < kSteps; ++step) {
    comm.set_step(step);
    opt.zero_grad();
    Batch mine =
        rows(global_batch(c.model, step, c.dtype), comm.rank() * local, (comm.rank() + 1) * local);
    for (int m = 0; m < c.micro_steps; ++m) {
      Batch part = rows(mine, m * micro, (m + 1) * micro);
      Tensor loss = loss_of(c.model, *model, part) * (1.0 / c.micro_steps);
      if (m + 1 < c.micro_steps) {
        auto guard = dp.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    dp.finish_gradients();
    opt.step();
  }
  return model;
}

}  // namespace

void check_dp_matches_single_process(Communicator& comm, const DpCase& c) {
  auto reference = train_reference(c);
  auto replica = train_data_parallel(comm, c);
  auto want = reference->named_parameters();
  auto got = replica->named_parameters();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LE(max_abs_diff(got[i].second, want[i].second), c.tolerance)
        << c.model << " " << dtype_name(c.dtype) << " parameter " << got[i].first << " on rank "
        << comm.rank() << " of " << comm.size();
    Tensor from_root = got[i].second.detach().clone();
    comm.broadcast(from_root, 0);
    EXPECT_EQ(max_abs_diff(from_root, got[i].second), 0.0)
        << "replicas differ in " << got[i].first << " on rank " << comm.rank();
  }
}

namespace {

/// Three linear layers: "used" always, "rank0" only on rank 0, "unused" never.
class Branches : public nn::Module {
 public:
  explicit Branches(Generator& gen) {
    used = register_module("used", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, gen));
    rank0 = register_module("rank0", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, gen));
    unused = register_module("unused", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, gen));
  }
  std::shared_ptr<nn::Linear> used, rank0, unused;
};

}  // namespace

void check_dp_unused_parameters(Communicator& comm) {
  Generator gen(3);
  Branches model(gen);
  // One bucket per parameter, so that the unused ones sit in buckets of their own.
  DataParallel dp(model, std::shared_ptr<Communicator>(&comm, [](Communicator*) {}),
                  {.bucket_bytes = 1, .first_bucket_bytes = 1});
  Tensor x = full({2, 3}, comm.rank() + 1.0);
  Tensor loss = sum(model.used->forward(x));
  if (comm.rank() == 0) loss = loss + sum(model.rank0->forward(x));
  loss.backward();
  dp.finish_gradients();
  // d sum(W x + b) / dW = column sums of x for every output row: rank r's x is r + 1.
  double n = comm.size();
  double used_w = 0;
  for (int r = 0; r < comm.size(); ++r) used_w += 2.0 * (r + 1) / n;
  EXPECT_EQ(model.used->weight().grad().to_vector<float>(),
            std::vector<float>(6, static_cast<float>(used_w)));
  EXPECT_EQ(model.rank0->weight().grad().to_vector<float>(),
            std::vector<float>(6, static_cast<float>(2.0 / n)));
  EXPECT_EQ(model.rank0->bias().grad().to_vector<float>(),
            std::vector<float>(2, static_cast<float>(2.0 / n)));
  EXPECT_FALSE(model.unused->weight().grad().defined());
  EXPECT_FALSE(model.unused->bias().grad().defined());
}

}  // namespace strata::dist::testing
