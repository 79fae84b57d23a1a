// Both replicas start from rank-dependent seeds, so the start broadcast matters, and train on
// this rank's rows of the same global batches.
#include "tests/distributed/zero_checks.h"

#include <gtest/gtest.h>

#include "core/nn/linear.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/optim/adam.h"
#include "core/optim/sgd.h"
#include "distributed/data_parallel.h"
#include "distributed/grad_clip.h"
#include "distributed/zero.h"
#include "tests/distributed/dp_checks.h"

namespace strata::dist::testing {
namespace {

constexpr int kSteps = 4;

std::shared_ptr<Communicator> borrow(Communicator& comm) {
  return std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
}

/// sgd: one group. adamw: weights (weight decay 0.1) and biases (none), as in GPT training.
std::vector<optim::ParamGroup> groups_of(nn::Module& model, const std::string& optimizer) {
  if (optimizer == "sgd") return {{model.trainable_parameters(), {}, {}, {}}};
  optim::ParamGroup decay{{}, {}, 0.1, {}}, no_decay{{}, {}, 0.0, {}};
  for (auto& [name, p] : model.named_parameters()) {
    (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  }
  return {decay, no_decay};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& optimizer,
                                                 std::vector<optim::ParamGroup> groups) {
  if (optimizer == "sgd") {
    return std::make_unique<optim::SGD>(std::move(groups),
                                        optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  }
  optim::AdamWOptions o;
  o.lr = 0.01;
  return std::make_unique<optim::AdamW>(std::move(groups), o);
}

Tensor local_loss(Communicator& comm, const ZeroCase& c, nn::Sequential& model, int step) {
  int64_t local = kGlobalBatch / comm.size();
  Batch mine =
      rows(global_batch(c.model, step, c.dtype), comm.rank() * local, (comm.rank() + 1) * local);
  return loss_of(c.model, model, mine);
}

struct Trained {
  std::shared_ptr<nn::Sequential> model;
  std::vector<double> norms;  // before clipping, per step
};

Trained train_dp(Communicator& comm, const ZeroCase& c) {
  auto model = make_model(c.model, 7 + comm.rank(), c.dtype);
  DataParallel dp(*model, borrow(comm));
  auto opt = make_optimizer(c.optimizer, groups_of(*model, c.optimizer));
  std::vector<double> norms;
  for (int step = 0; step < kSteps; ++step) {
    opt->zero_grad();
    local_loss(comm, c, *model, step).backward();
    dp.finish_gradients();
    if (c.max_norm > 0) {
      norms.push_back(clip_grad_norm_(model->trainable_parameters(), c.max_norm, 2, comm,
                                      GradSharding::replicated));
    }
    opt->step();
  }
  return {model, norms};
}

Trained train_zero(Communicator& comm, const ZeroCase& c, int64_t* state_numel) {
  auto model = make_model(c.model, 7 + comm.rank(), c.dtype);
  ZeroOptimizer zero(
      groups_of(*model, c.optimizer), borrow(comm),
      [&](std::vector<optim::ParamGroup> g) { return make_optimizer(c.optimizer, std::move(g)); });
  std::vector<double> norms;
  for (int step = 0; step < kSteps; ++step) {
    zero.zero_grad();
    local_loss(comm, c, *model, step).backward();
    if (c.max_norm > 0) norms.push_back(zero.clip_grad_norm_(c.max_norm));
    zero.step();
  }
  *state_numel = 0;
  for (const auto& [key, t] : zero.inner().state_dict()) {
    bool moment = key.find("momentum_buffer") != std::string::npos ||
                  key.find(".exp_avg_sq") != std::string::npos;
    if (moment) *state_numel += t.numel();
  }
  return {model, norms};
}

}  // namespace

void check_zero_matches_data_parallel(Communicator& comm, const ZeroCase& c) {
  Trained dp = train_dp(comm, c);
  int64_t state_numel = 0;
  Trained zero = train_zero(comm, c, &state_numel);
  auto want = dp.model->named_parameters();
  auto got = zero.model->named_parameters();
  std::string where = str_cat(c.model, " ", c.optimizer, " ", dtype_name(c.dtype), " clip ",
                              c.max_norm, " on rank ", comm.rank(), " of ", comm.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LE(max_abs_diff(got[i].second, want[i].second), c.tolerance)
        << got[i].first << ", " << where;
    Tensor from_root = got[i].second.detach().clone();
    comm.broadcast(from_root, 0);
    EXPECT_EQ(max_abs_diff(from_root, got[i].second), 0.0)
        << "replicas differ in " << got[i].first << ", " << where;
  }
  ASSERT_EQ(zero.norms.size(), dp.norms.size());
  for (size_t s = 0; s < dp.norms.size(); ++s) {
    EXPECT_NEAR(zero.norms[s], dp.norms[s], 1e-6 * dp.norms[s])
        << "norm at step " << s << ", " << where;
  }
  if (c.max_norm > 0) {
    EXPECT_GT(dp.norms[0], c.max_norm) << "the case should clip";
  }
  // One full copy of each moment, split over the ranks.
  auto total = sum_over_ranks(comm, {static_cast<double>(state_numel)});
  EXPECT_EQ(total[0], static_cast<double>(dp.model->num_parameters())) << where;
}

namespace {

/// "used" on every rank, "rank0" on rank 0 only, "unused" nowhere.
class ThreeHeads : public nn::Module {
 public:
  explicit ThreeHeads(Generator& gen) {
    used = register_module("used", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, gen));
    rank0 = register_module("rank0", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, gen));
    unused = register_module("unused", std::make_shared<nn::Linear>(nn::LinearOptions{3, 2}, gen));
  }
  std::shared_ptr<nn::Linear> used, rank0, unused;
};

}  // namespace

void check_zero_unused_parameters(Communicator& comm) {
  Generator gen(3);
  ThreeHeads model(gen);
  Tensor unused_before = model.unused->weight().detach().clone();
  Tensor rank0_before = model.rank0->weight().detach().clone();
  ZeroOptimizer zero({{model.trainable_parameters(), {}, {}, {}}}, borrow(comm),
                     [](std::vector<optim::ParamGroup> g) {
                       return std::make_unique<optim::SGD>(
                           std::move(g), optim::SGDOptions{.lr = 1, .momentum = 0.9});
                     });
  Tensor x = full({2, 3}, comm.rank() + 1.0);
  Tensor loss = sum(model.used->forward(x));
  if (comm.rank() == 0) loss = loss + sum(model.rank0->forward(x));
  loss.backward();
  zero.step();
  EXPECT_EQ(max_abs_diff(model.unused->weight(), unused_before), 0.0);
  // d sum(W x + b) / dW = 2 (rank 0's x is 1, two rows), averaged over the ranks; lr 1.
  Tensor expected = rank0_before - 2.0 / comm.size();
  EXPECT_LE(max_abs_diff(model.rank0->weight(), expected), 1e-6);
  // The first momentum step moves by lr * grad, and momentum buffers exist only for the
  // pieces that had a gradient: used and rank0, 8 elements each, split over the ranks.
  double state = 0;
  for (const auto& [key, t] : zero.inner().state_dict()) {
    if (key != "step") state += static_cast<double>(t.numel());
  }
  EXPECT_EQ(sum_over_ranks(comm, {state})[0], 16.0);
}

}  // namespace strata::dist::testing
