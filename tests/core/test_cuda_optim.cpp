// The optimizers, device fills and gradient clipping on CUDA against the CPU: SGD, Adam,
// AdamW, Adagrad and RMSprop through their classes (state slots filled on the device, the
// fused kernels), full() and scalar_like() per dtype, clip_grad_norm_ for several norms; LARS,
// without a CUDA kernel, says so. Skips without a GPU, saying why.
#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "core/optim/adagrad.h"
#include "core/optim/adam.h"
#include "core/optim/clip.h"
#include "core/optim/rmsprop.h"
#include "core/optim/sgd.h"
#include "tests/core/cuda_case.h"

namespace strata {
namespace {

using namespace cuda_case;
using MakeOpt = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

/// Three steps of a small least-squares model: parameters, then each state slot, in order.
/// 35 more small parameters make the fused CUDA launches split (32 tensors a launch), and `u`
/// has no gradient in step 1, so from then on its step count (Adam's bias corrections,
/// Adagrad's decay) differs from the others' and it needs a launch of its own.
Outs train_steps(Device d, DType t, const MakeOpt& make) {
  Tensor w = input(d, t, {5, 7}, 81, -0.5, 0.5), b = input(d, t, {5}, 82, -0.5, 0.5);
  Tensor u = input(d, t, {6}, 84, -0.5, 0.5);
  Tensor x = input(d, t, {4, 7}, 83, -1, 1, false);
  std::vector<Tensor> params{w, b, u};
  for (int i = 0; i < 35; ++i) params.push_back(input(d, t, {3 + i % 4}, 200 + i, -0.5, 0.5));
  auto opt = make(params);
  for (int step = 0; step < 3; ++step) {
    opt->zero_grad();
    Tensor loss = sum(square(linear(x, w, b)));
    if (step != 1) loss = add(loss, sum(square(u)));
    for (size_t i = 3; i < params.size(); ++i) loss = add(loss, sum(square(params[i])));
    loss.backward();
    opt->step();
  }
  Outs out;
  for (const Tensor& p : params) out.push_back(p.detach());
  for (const auto& [key, state] : opt->state_dict()) {
    if (state.device() == d && state.dim() > 0) out.push_back(state);  // the per-element slots
  }
  return out;
}

std::vector<OpCase> optimizer_cases() {
  std::vector<OpCase> cases;
  const std::pair<const char*, MakeOpt> opts[] = {
      {"sgd_momentum_wd",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::SGD>(
             p, optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01});
       }},
      {"sgd_nesterov",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::SGD>(
             p, optim::SGDOptions{.lr = 0.05, .momentum = 0.8, .nesterov = true});
       }},
      {"sgd_plain",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::SGD>(p, optim::SGDOptions{.lr = 0.1});
       }},
      {"adam_wd",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::Adam>(p,
                                              optim::AdamOptions{.lr = 1e-2, .weight_decay = 0.05});
       }},
      {"adamw_amsgrad",
       [](std::vector<Tensor> p) {
         optim::AdamWOptions o;
         o.lr = 1e-2;
         o.weight_decay = 0.1;
         o.amsgrad = true;
         return std::make_unique<optim::AdamW>(p, o);
       }},
      {"adagrad_decay_wd",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::Adagrad>(
             p, optim::AdagradOptions{.lr = 0.05,
                                      .lr_decay = 0.1,
                                      .weight_decay = 0.01,
                                      .initial_accumulator_value = 0.1});
       }},
      {"rmsprop_plain",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::RMSprop>(p, optim::RMSpropOptions{.lr = 1e-2});
       }},
      {"rmsprop_centered_momentum_wd",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::RMSprop>(
             p, optim::RMSpropOptions{
                    .lr = 1e-2, .weight_decay = 0.01, .momentum = 0.9, .centered = true});
       }},
  };
  for (DType t : {DType::f32, DType::bf16}) {
    for (const auto& [name, make] : opts) {
      // bf16: the same f32 update rounded once on both devices (a flip is 1 ulp <= 2^-7 |p|);
      // 8 x 2e-2 would exceed all that three steps move (Adam: ~0.03) and check nothing.
      cases.push_back({str_cat("optimizer_", name, "_", dtype_name(t)), t,
                       [make](Device d, DType t) { return train_steps(d, t, make); },
                       t == DType::bf16 ? 0.5 : 8.0});
    }
  }
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64,
                  DType::u8, DType::b8}) {
    cases.push_back({str_cat("full_scalar_like_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor f = full({3, 70}, 3.0, t, d);  // rounded the same on both sides
                       // Negative values only where the dtype holds them (a cast to u8 differs).
                       const bool sign = t != DType::u8 && t != DType::b8;
                       Tensor s = scalar_like(sign ? -1.5 : 1.0, f);
                       return Outs{f, s, ones({5}, t, d)};
                     },
                     0});
  }
  const double norms[] = {2, 1, 3, std::numeric_limits<double>::infinity()};
  for (DType t : {DType::f32, DType::bf16}) {
    for (double p : norms) {
      cases.push_back({str_cat("clip_grad_norm_", std::isinf(p) ? "inf" : std::to_string(int(p)),
                               "_", dtype_name(t)),
                       t, [p](Device d, DType t) {
                         std::vector<Tensor> params;
                         for (int i = 0; i < 3; ++i) {
                           Tensor w = input(d, t, {10 + 90 * i}, 90 + i);
                           w.set_grad(input(d, t, {10 + 90 * i}, 95 + i, -3, 3, false));
                           params.push_back(w);
                         }
                         params.push_back(input(d, t, {4}, 99));  // no gradient: skipped
                         const double total = optim::clip_grad_norm_(params, 1.5, p);
                         // The norm as f32: CUDA reduces in f32 storage, the CPU in f64.
                         return Outs{full({}, total, DType::f32, d), params[0].grad(),
                                     params[1].grad(), params[2].grad()};
                       }});
    }
  }
  return cases;
}

class CudaOptim : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaOptim, MatchesCpu) { expect_cuda_matches_cpu(GetParam()); }
TEST_P(CudaOptim, CpuReferenceIsFinite) { expect_cpu_reference_finite(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Optim, CudaOptim, ::testing::ValuesIn(optimizer_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// LARS has no CUDA kernel yet: step() names the optimizer, the parameter and what to use
// instead.
TEST(CudaOptimRules, OptimizersWithoutKernelsSaySo) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  Tensor w = ones({3}, DType::f32, Device::cuda(0)).set_requires_grad();
  w.set_grad(ones({3}, DType::f32, Device::cuda(0)));
  optim::LARS lars({w}, {});
  for (auto [name, opt] : {std::pair<const char*, optim::Optimizer*>{"LARS", &lars}}) {
    std::string msg = testing::message_of([&] { opt->step(); });
    EXPECT_EQ(msg.rfind(str_cat("[", name,
                                "] has no CUDA kernel yet (parameter 0 of group 0: "
                                "f32[3] cuda:0); use SGD, Adam or AdamW on CUDA"),
                        0),
              0u)
        << msg;
  }
}

}  // namespace
}  // namespace strata
