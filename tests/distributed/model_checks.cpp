// Every rank also trains the single-process reference on the whole global batch, so the
// comparison needs no files; replicas start from rank-dependent seeds (the broadcast matters).
#include "tests/distributed/model_checks.h"

#include <gtest/gtest.h>

#include "core/autograd/grad_mode.h"
#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/conv.h"
#include "core/nn/linear.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"
#include "core/optim/adam.h"
#include "core/optim/sgd.h"
#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "models/gpt.h"
#include "tests/distributed/dp_checks.h"

namespace strata::dist::testing {
namespace {

constexpr int kSteps = 3;

std::shared_ptr<Communicator> borrow(Communicator& comm) {
  return std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
}

/// Rows of this rank: [rank * B / size, (rank + 1) * B / size).
Tensor my_rows(Communicator& comm, const Tensor& t) {
  int64_t local = t.size(0) / comm.size();
  return t.slice(0, comm.rank() * local, (comm.rank() + 1) * local).contiguous();
}

void expect_state_near(const nn::Module& got, const nn::Module& want, double tolerance,
                       Communicator& comm, const std::string& what) {
  auto g = got.state_dict();
  auto w = want.state_dict();
  ASSERT_EQ(g.size(), w.size()) << what;
  for (const auto& [name, t] : w) {
    ASSERT_TRUE(g.count(name)) << name << " missing, " << what;
    EXPECT_LE(max_abs_diff(g.at(name), t), tolerance)
        << name << ", " << what << " on rank " << comm.rank() << " of " << comm.size();
  }
}

/// Conv(2->4, 3x3) -> BatchNorm (sync over `comm` when given) -> ReLU -> Flatten -> Linear.
std::shared_ptr<nn::Sequential> bn_cnn(uint64_t seed, DType dtype, Communicator* comm) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{
          .in_channels = 2, .out_channels = 4, .kernel_size = {3, 3}, .padding = {1, 1}},
      gen));
  nn::BatchNormOptions bn{.num_features = 4};
  if (comm) {
    m->push_back(std::make_shared<SyncBatchNorm>(bn, borrow(*comm)));
  } else {
    m->push_back(std::make_shared<nn::BatchNorm2d>(bn));
  }
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Flatten>());
  m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{4 * 6 * 6, 3}, gen));
  m->to(dtype);
  return m;
}

optim::SGDOptions sgd_options() { return {.lr = 0.1, .momentum = 0.9}; }

}  // namespace

void check_sync_batch_norm_matches_single_process(Communicator& comm, DType dtype,
                                                  double tolerance) {
  auto reference = bn_cnn(7, dtype, nullptr);
  optim::SGD ref_opt(reference->trainable_parameters(), sgd_options());
  auto replica = bn_cnn(7 + comm.rank(), dtype, &comm);
  DataParallel dp(*replica, borrow(comm));
  optim::SGD opt(replica->trainable_parameters(), sgd_options());
  for (int step = 0; step < kSteps; ++step) {
    Batch global = global_batch("cnn", step, dtype);
    ref_opt.zero_grad();
    cross_entropy(reference->forward(global.x), global.y).backward();
    ref_opt.step();
    opt.zero_grad();
    cross_entropy(replica->forward(my_rows(comm, global.x)), my_rows(comm, global.y)).backward();
    dp.finish_gradients();
    opt.step();
  }
  expect_state_near(*replica, *reference, tolerance, comm,
                    str_cat("SyncBatchNorm CNN ", dtype_name(dtype)));
  // Eval mode uses the (synchronised) running statistics: the outputs agree too.
  reference->eval();
  replica->eval();
  Tensor x = global_batch("cnn", 99, dtype).x;
  EXPECT_LE(max_abs_diff(replica->forward(x), reference->forward(x)), tolerance * 10);
}

void check_batch_norm_buffers_broadcast(Communicator& comm) {
  auto model = bn_cnn(7, DType::f32, nullptr);
  DataParallel dp(*model, borrow(comm));
  Batch global = global_batch("cnn", 0, DType::f32);
  cross_entropy(model->forward(my_rows(comm, global.x)), my_rows(comm, global.y)).backward();
  dp.finish_gradients();
  Tensor mean = model->state_dict().at("1.running_mean").clone();
  Tensor root = mean.clone();
  comm.broadcast(root, 0);
  if (comm.size() > 1) {  // local batches differ, so local statistics do
    double diff = max_abs_diff(mean, root);
    if (comm.rank() == 0) {
      EXPECT_EQ(diff, 0.0);
    } else {
      EXPECT_GT(diff, 0.0);
    }
  }
  dp.broadcast_buffers();
  for (const char* name : {"1.running_mean", "1.running_var", "1.num_batches_tracked"}) {
    Tensor mine = model->state_dict().at(name).clone();
    Tensor from_root = mine.clone();
    comm.broadcast(from_root, 0);
    EXPECT_EQ(max_abs_diff(mine, from_root), 0.0) << name << " on rank " << comm.rank();
  }
  EXPECT_EQ(max_abs_diff(model->state_dict().at("1.running_mean"), root), 0.0);
}

namespace {

models::GPTConfig tiny_gpt() {
  return {.vocab_size = 16, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 16};
}

std::unique_ptr<optim::AdamW> adamw(const std::vector<Tensor>& params) {
  optim::AdamWOptions o;
  o.lr = 0.01;
  return std::make_unique<optim::AdamW>(params, o);
}

}  // namespace

void check_gpt_matches_single_process(Communicator& comm, DType dtype, double tolerance,
                                      const std::string& optimizer) {
  Generator ref_gen(5), gen(5 + comm.rank());
  models::GPT reference(tiny_gpt(), ref_gen), replica(tiny_gpt(), gen);
  reference.to(dtype);
  replica.to(dtype);
  auto make_opt = [&](const std::vector<Tensor>& params) -> std::unique_ptr<optim::Optimizer> {
    if (optimizer == "adamw") return adamw(params);
    return std::make_unique<optim::SGD>(params, sgd_options());
  };
  auto ref_opt = make_opt(reference.trainable_parameters());
  DataParallel dp(replica, borrow(comm), {.bucket_bytes = 4096, .first_bucket_bytes = 1024});
  auto opt = make_opt(replica.trainable_parameters());
  for (int step = 0; step < kSteps; ++step) {
    Generator data(2000 + step);
    Tensor idx = randint(0, 16, {kGlobalBatch, 8}, data);
    Tensor targets = randint(0, 16, {kGlobalBatch, 8}, data);
    ref_opt->zero_grad();
    reference.loss(idx, targets).backward();
    ref_opt->step();
    comm.set_step(step);
    opt->zero_grad();
    replica.loss(my_rows(comm, idx), my_rows(comm, targets)).backward();
    dp.finish_gradients();
    opt->step();
  }
  EXPECT_GT(dp.bucket_layout().size(), 1u) << "the case should use several buckets";
  expect_state_near(replica, reference, tolerance, comm,
                    str_cat("GPT ", optimizer, " ", dtype_name(dtype)));
}

namespace {

std::shared_ptr<nn::Sequential> mlp(Generator& gen, int64_t in, int64_t hidden, int64_t out,
                                    DType dtype) {
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{in, hidden}, gen));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{hidden, out}, gen));
  m->to(dtype);
  return m;
}

struct Gan {
  std::shared_ptr<nn::Sequential> g, d, ema;  // ema: outside DP, an average of g
  std::unique_ptr<optim::Optimizer> g_opt, d_opt;
  std::unique_ptr<DataParallel> g_dp, d_dp;  // null in the single-process reference

  Gan(uint64_t seed, DType dtype, Communicator* comm) {
    Generator gen(seed);
    g = mlp(gen, 4, 8, 2, dtype);
    d = mlp(gen, 2, 8, 1, dtype);
    if (comm) {
      g_dp = std::make_unique<DataParallel>(*g, borrow(*comm));
      d_dp = std::make_unique<DataParallel>(*d, borrow(*comm));
    }
    Generator ema_gen(seed);  // replaced by g's (broadcast) values below
    ema = mlp(ema_gen, 4, 8, 2, dtype);
    ema->load_state_dict(g->state_dict());
    g_opt = adamw(g->trainable_parameters());
    d_opt = std::make_unique<optim::SGD>(d->trainable_parameters(), sgd_options());
  }

  /// LSGAN: D pulls real to 1 and fake to 0; G pulls D(fake) to 1.
  void step(const Tensor& real, const Tensor& z) {
    d_opt->zero_grad();
    Tensor fake = g->forward(z).detach();
    Tensor d_loss = mean(square(d->forward(real) - 1.0)) + mean(square(d->forward(fake)));
    d_loss.backward();
    if (d_dp) d_dp->finish_gradients();
    d_opt->step();
    g_opt->zero_grad();
    Tensor g_loss = mean(square(d->forward(g->forward(z)) - 1.0));
    if (d_dp) {
      // The generator loss also reaches D's parameters: keep those local (they are dropped
      // by the next d_opt->zero_grad()).
      auto guard = d_dp->no_sync();
      g_loss.backward();
    } else {
      g_loss.backward();
    }
    if (g_dp) g_dp->finish_gradients();
    g_opt->step();
    NoGradGuard no_grad;
    auto e = ema->parameters(), p = g->parameters();
    for (size_t i = 0; i < e.size(); ++i) {
      mul_(e[i], 0.9);
      add_(e[i], p[i], 0.1);
    }
  }
};

}  // namespace

void check_gan_matches_single_process(Communicator& comm, DType dtype, double tolerance) {
  Gan reference(11, dtype, nullptr);
  Generator key_gen(100 + comm.rank());
  auto key_encoder = mlp(key_gen, 2, 4, 2, dtype);  // outside DP, rank-dependent
  auto key_before = key_encoder->state_dict();
  for (auto& [name, t] : key_before) t = t.clone();
  Gan replica(11 + comm.rank(), dtype, &comm);
  for (int step = 0; step < kSteps; ++step) {
    Generator data(3000 + step);
    Tensor real = (randn({kGlobalBatch, 2}, data) * 0.5 + 2.0).to(dtype);
    Tensor z = randn({kGlobalBatch, 4}, data).to(dtype);
    reference.step(real, z);
    comm.set_step(step);
    replica.step(my_rows(comm, real), my_rows(comm, z));
    NoGradGuard no_grad;
    key_encoder->forward(my_rows(comm, real));  // used, but never trained or synchronised
  }
  std::string what = str_cat("GAN ", dtype_name(dtype));
  expect_state_near(*replica.g, *reference.g, tolerance, comm, what + " generator");
  expect_state_near(*replica.d, *reference.d, tolerance, comm, what + " discriminator");
  expect_state_near(*replica.ema, *reference.ema, tolerance, comm, what + " EMA");
  for (const auto& [name, t] : key_encoder->state_dict()) {
    EXPECT_EQ(max_abs_diff(t, key_before.at(name)), 0.0) << "key encoder " << name;
  }
}

}  // namespace strata::dist::testing
