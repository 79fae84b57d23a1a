// ZeRO-1 and cross-rank clipping on thread ranks: ZeroOptimizer equals DataParallel with the
// plain optimizer (SGD with momentum, AdamW with two groups), with and without clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/nn/linear.h"
#include "core/optim/clip.h"
#include "core/optim/sgd.h"
#include "distributed/grad_clip.h"
#include "distributed/thread_communicator.h"
#include "distributed/zero.h"
#include "tests/distributed/zero_checks.h"

namespace strata::dist {
namespace {

using testing::ZeroCase;

// Both paths reduce the same sums in the same order, so without clipping they agree to the
// last bit (tolerance 0). Clipping sums the squared norm over shards in another order, which
// moves the scale factor by rounding: observed at most 2.8e-17 in f64 and 0 in f32 after 4
// steps; the bounds leave a wide margin.
constexpr double kExact = 0;
constexpr double kF32ClipTolerance = 1e-6;
constexpr double kF64ClipTolerance = 1e-15;

struct Params {
  int ranks;
  ZeroCase c;
};

void PrintTo(const Params& p, std::ostream* os) {
  *os << p.c.model << " " << p.c.optimizer << " " << dtype_name(p.c.dtype) << " on " << p.ranks
      << " ranks";
}

class ZeroEquivalence : public ::testing::TestWithParam<Params> {};

TEST_P(ZeroEquivalence, MatchesDataParallelWithThePlainOptimizer) {
  const Params& p = GetParam();
  run_thread_ranks(p.ranks, [&](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    testing::check_zero_matches_data_parallel(comm, p.c);
  });
}

std::vector<Params> cases() {
  std::vector<Params> out;
  for (int ranks : {1, 2, 3, 4}) {
    for (const char* opt : {"sgd", "adamw"}) {
      out.push_back({ranks, {"mlp", opt, DType::f32, kExact}});
      out.push_back({ranks, {"mlp", opt, DType::f64, kExact}});
      out.push_back({ranks, {"cnn", opt, DType::f32, kF32ClipTolerance, 0.05}});
      out.push_back({ranks, {"mlp", opt, DType::f64, kF64ClipTolerance, 0.05}});
    }
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Params>& info) {
  const ZeroCase& c = info.param.c;
  return str_cat(c.model, "_", c.optimizer, "_", dtype_name(c.dtype), "_dp", info.param.ranks,
                 c.max_norm > 0 ? "_clipped" : "");
}

INSTANTIATE_TEST_SUITE_P(Models, ZeroEquivalence, ::testing::ValuesIn(cases()), case_name);

TEST(ZeroOptimizer, UnusedParametersAreSkipped) {
  for (int ranks : {1, 2, 3}) {
    run_thread_ranks(ranks, [](Communicator& comm) {
      comm.set_timeout(std::chrono::seconds(60));
      testing::check_zero_unused_parameters(comm);
    });
  }
}

TEST(ZeroOptimizer, ShardsCoverTheParametersOnce) {
  // 3 ranks over 8 * 5 + 5 = 45 elements: chunks of 15 that cut the weight.
  run_thread_ranks(3, [](Communicator& comm) {
    Generator gen(1);
    nn::Linear layer({8, 5}, gen);
    ZeroOptimizer zero({{layer.trainable_parameters(), {}, {}, {}}},
                       std::shared_ptr<Communicator>(&comm, [](Communicator*) {}),
                       [](std::vector<optim::ParamGroup> g) {
                         return std::make_unique<optim::SGD>(std::move(g), optim::SGDOptions{});
                       });
    EXPECT_EQ(zero.shard_numel(), 15);
    std::vector<int64_t> sizes;
    for (const Tensor& s : zero.shard_parameters()) sizes.push_back(s.numel());
    std::vector<std::vector<int64_t>> want = {{15}, {15}, {10, 5}};
    EXPECT_EQ(sizes, want[comm.rank()]);
  });
}

TEST(ZeroOptimizer, RefusesLarsAndMixedDtypes) {
  Generator gen(1);
  nn::Linear a({2, 2}, gen), b({2, 2}, gen);
  b.to(DType::f64);
  auto comm = make_single_communicator();
  auto message = [&](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(message([&] {
              ZeroOptimizer z({{a.trainable_parameters(), {}, {}, {}}}, comm,
                              [](std::vector<optim::ParamGroup> g) {
                                return std::make_unique<optim::LARS>(std::move(g),
                                                                     optim::LARSOptions{});
                              });
            }),
            "[ZeroOptimizer] LARS scales each parameter by its own norm, which a shard cannot "
            "see; use SGD, Adam, AdamW, RMSprop or Adagrad");
  std::vector<Tensor> mixed = a.trainable_parameters();
  mixed.push_back(b.weight());
  EXPECT_EQ(message([&] {
              ZeroOptimizer z({{mixed, {}, {}, {}}}, comm, [](std::vector<optim::ParamGroup> g) {
                return std::make_unique<optim::SGD>(std::move(g), optim::SGDOptions{});
              });
            }),
            "[ZeroOptimizer] parameters mix f32 and f64 (parameter 2 of group 0); use one dtype, "
            "or one ZeroOptimizer per dtype");
}

TEST(GradClip, ReplicatedEqualsTheCoreClip) {
  auto comm = make_single_communicator();
  for (double p : {1.0, 2.0, std::numeric_limits<double>::infinity()}) {
    Generator gen(2);
    nn::Linear a({4, 3}, gen), b({4, 3}, gen);
    auto pa = a.trainable_parameters(), pb = b.trainable_parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      pa[i].set_grad(randn(pa[i].shape(), gen));
      pb[i].set_grad(pa[i].grad().clone());
    }
    double want = optim::clip_grad_norm_(pa, 0.5, p);
    EXPECT_EQ(clip_grad_norm_(pb, 0.5, p, *comm, GradSharding::replicated), want);
    EXPECT_GT(want, 0.5);  // it clipped
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_EQ(pb[i].grad().to_vector<float>(), pa[i].grad().to_vector<float>());
    }
  }
}

TEST(GradClip, ShardedNormAddsThePartsOfEveryRank) {
  // Rank r holds [r + 1] * 4 elements: the 2-norm is sqrt(4 * sum (r + 1)^2).
  run_thread_ranks(3, [](Communicator& comm) {
    Tensor g = full({4}, comm.rank() + 1.0);
    double norm = global_grad_norm({g}, 2, comm, GradSharding::sharded);
    EXPECT_DOUBLE_EQ(norm, std::sqrt(4.0 * (1 + 4 + 9)));
    double inf =
        global_grad_norm({g}, std::numeric_limits<double>::infinity(), comm, GradSharding::sharded);
    EXPECT_EQ(inf, 3.0);
    EXPECT_EQ(global_grad_norm({g}, 2, comm, GradSharding::replicated),
              std::sqrt(4.0 * (comm.rank() + 1) * (comm.rank() + 1)));
  });
}

TEST(Metrics, AveragesOverRanks) {
  run_thread_ranks(4, [](Communicator& comm) {
    double r = comm.rank();
    EXPECT_DOUBLE_EQ(mean_over_ranks(comm, r), 1.5);
    // accuracy r / 4 over batches of r + 1: sum(r (r + 1) / 4) / sum(r + 1) = 5 / 10.
    EXPECT_DOUBLE_EQ(weighted_mean_over_ranks(comm, r / 4, r + 1), 0.5);
    EXPECT_EQ(sum_over_ranks(comm, {1, r}), (std::vector<double>{4, 6}));
  });
}

}  // namespace
}  // namespace strata::dist
