// DataParallel on thread ranks: DP=N equals one process on the global batch (MLP and CNN,
// f32 and f64, one bucket and many, with gradient accumulation), unused parameters, layout.
#include <gtest/gtest.h>

#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/linear.h"
#include "core/ops/reduce.h"
#include "distributed/data_parallel.h"
#include "distributed/thread_communicator.h"
#include "tests/distributed/dp_checks.h"

namespace strata::dist {
namespace {

using testing::DpCase;

// Tolerances: DP sums the per-rank mean gradients in another order than the global mean,
// so results differ by rounding only. Observed after 3 SGD steps (momentum 0.9): at most
// 3.0e-8 in f32 and 5.6e-17 in f64; the bounds leave a margin of about 15x.
constexpr double kF32Tolerance = 5e-7;
constexpr double kF64Tolerance = 1e-15;

struct Params {
  int ranks;
  DpCase c;
};

void PrintTo(const Params& p, std::ostream* os) {
  *os << p.c.model << " " << dtype_name(p.c.dtype) << " on " << p.ranks << " ranks";
}

class DataParallelEquivalence : public ::testing::TestWithParam<Params> {};

TEST_P(DataParallelEquivalence, MatchesOneProcessOnTheGlobalBatch) {
  const Params& p = GetParam();
  run_thread_ranks(p.ranks, [&](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    testing::check_dp_matches_single_process(comm, p.c);
  });
}

std::vector<Params> cases() {
  std::vector<Params> out;
  for (int ranks : {1, 2, 3, 4}) {
    for (const char* model : {"mlp", "cnn"}) {
      out.push_back({ranks, {model, DType::f32, kF32Tolerance}});
      out.push_back({ranks, {model, DType::f64, kF64Tolerance}});
      out.push_back({ranks, {model, DType::f32, kF32Tolerance, /*bucket_bytes=*/64}});
    }
  }
  for (int ranks : {1, 2, 3}) {  // 2 micro-steps: local batches of 12 / ranks split in two
    out.push_back({ranks, {"mlp", DType::f64, kF64Tolerance, 25 << 20, 2}});
    out.push_back({ranks, {"cnn", DType::f32, kF32Tolerance, 64, 2}});
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Params>& info) {
  const DpCase& c = info.param.c;
  return str_cat(c.model, "_", dtype_name(c.dtype), "_dp", info.param.ranks,
                 c.bucket_bytes < 1024 ? "_small_buckets" : "",
                 c.micro_steps > 1 ? "_accumulate" : "");
}

INSTANTIATE_TEST_SUITE_P(Models, DataParallelEquivalence, ::testing::ValuesIn(cases()), case_name);

TEST(DataParallel, UnusedParametersDoNotBlock) {
  for (int ranks : {1, 2, 3}) {
    run_thread_ranks(ranks, [](Communicator& comm) {
      comm.set_timeout(std::chrono::seconds(60));
      testing::check_dp_unused_parameters(comm);
    });
  }
}

TEST(DataParallel, BucketsFollowReverseRegistrationOrder) {
  Generator gen(1);
  nn::Sequential model({std::make_shared<nn::Linear>(nn::LinearOptions{4, 8}, gen),
                        std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(nn::LinearOptions{8, 2}, gen)});
  using Layout = std::vector<std::vector<std::string>>;
  // Sizes in bytes: 0.weight 128, 0.bias 32, 2.weight 64, 2.bias 8.
  DataParallel big(model, make_single_communicator());
  EXPECT_EQ(big.bucket_layout(), (Layout{{"2.bias", "2.weight", "0.bias", "0.weight"}}));
  DataParallel small(model, make_single_communicator(),
                     {.bucket_bytes = 160, .first_bucket_bytes = 72});
  EXPECT_EQ(small.bucket_layout(), (Layout{{"2.bias", "2.weight"}, {"0.bias", "0.weight"}}));
}

TEST(DataParallel, SecondBackwardWithoutFinishIsAnError) {
  Generator gen(1);
  nn::Linear layer({2, 1}, gen);
  DataParallel dp(layer, make_single_communicator());
  Tensor x = ones({1, 2});
  sum(layer.forward(x)).backward();
  std::string message;
  try {
    sum(layer.forward(x)).backward();
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_EQ(message,
            "[DataParallel] weight got a second gradient before finish_gradients(); call "
            "finish_gradients() after each backward, or run the extra backward passes inside "
            "no_sync()");
}

}  // namespace
}  // namespace strata::dist
