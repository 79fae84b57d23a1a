// Optimizers, schedules, clipping and penalties against torch 1.13 trajectories.
//
// The optimizer literals come from this script (/usr/bin/python3, torch 1.13, float64): a
// quadratic with fixed curvature, the parameters printed after steps 1, 10 and 20.
//   W0 = [0.5, -1.0, 2.0, 0.25]; C = [1, 2, 0.5, 3]; B = [0.1, -0.2, 0.3, 0]
//   w = torch.tensor(W0, requires_grad=True); opt = make([w])
//   for s in range(1, 21): w.grad = (C * w + B).detach(); opt.step(); print(s, w.tolist())
// with make = e.g. lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1,
// weight_decay=0.01) (each case below names its arguments). LARS runs torch SGD(lr=0.5,
// momentum=0.9) after torchlars' apply_adaptive_lrs (wd=0.01, trust_coef=0.02, eps=1e-8):
//   a = |w| / (|g| + wd*|w| + eps) * tc; w.grad.add_(w, alpha=wd); w.grad.mul_(a)
// The schedule literals: torch SGD(lr=0.1) with the named scheduler, optimizer.step() then
// scheduler.step() per step, recording param_groups[0]['lr'] at the steps in kPick.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include "core/ops.h"
#include "core/optim/adagrad.h"
#include "core/optim/adam.h"
#include "core/optim/clip.h"
#include "core/optim/rmsprop.h"
#include "core/optim/schedule.h"
#include "core/optim/sgd.h"
#include "tests/support/values.h"

namespace strata::optim {
namespace {

using D = std::vector<double>;
using Make = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;

const D kW0 = {0.5, -1.0, 2.0, 0.25};
const D kC = {1, 2, 0.5, 3};
const D kB = {0.1, -0.2, 0.3, 0};

/// g = C * w + sign * B, set as w's gradient.
void set_quadratic_grad(Tensor& w, double sign = 1) {
  auto v = w.to(DType::f64).to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = kC[i] * v[i] + sign * kB[i];
  w.set_grad(from_vector<double>(v, {4}).to(w.dtype()));
}

struct Trajectory {
  D step1, step10, step20;
};

Trajectory run(const Make& make, DType dtype = DType::f64) {
  Tensor w = from_vector<double>(kW0, {4}).to(dtype);
  w.set_requires_grad(true);
  auto opt = make({w});
  Trajectory t;
  for (int s = 1; s <= 20; ++s) {
    set_quadratic_grad(w);
    opt->step();
    if (s == 1) t.step1 = w.to(DType::f64).to_vector<double>();
    if (s == 10) t.step10 = w.to(DType::f64).to_vector<double>();
    if (s == 20) t.step20 = w.to(DType::f64).to_vector<double>();
  }
  return t;
}

void expect_near(const D& got, const D& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
}

void expect_trajectory(const Make& make, const Trajectory& want, const std::string& what) {
  Trajectory got = run(make);
  expect_near(got.step1, want.step1, 1e-12, what + " step 1");
  expect_near(got.step10, want.step10, 1e-12, what + " step 10");
  expect_near(got.step20, want.step20, 1e-12, what + " step 20");
}

template <class O, class Opts>
Make maker(Opts opts) {
  return [opts](std::vector<Tensor> p) { return std::make_unique<O>(std::move(p), opts); };
}

TEST(Optim, SGDMatchesTorch) {
  expect_trajectory(
      maker<SGD>(SGDOptions{.lr = 0.1}),
      {{0.44, -0.7799999999999999, 1.8699999999999999, 0.175},
       {0.10920706406000003, -0.01811160064, 0.9567160420197852, 0.007061881224999998},
       {-0.02705400724565843, 0.08731786344932468, 0.3320633982622098, 0.00019948066574402987}},
      "SGD(lr=0.1)");
  expect_trajectory(
      maker<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}),
      {{0.4395, -0.779, 1.8679999999999999, 0.17475},
       {-0.45214981782991015, 0.2255440357120656, -1.271197575974961, 0.11916728062706004},
       {0.10786626444931714, 0.4328340427553882, -1.0562217383899897, 0.00022801454743999878}},
      "SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)");
  expect_trajectory(
      maker<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01}),
      {{0.38505, -0.5801, 1.7492, 0.10702500000000001},
       {-0.3047260266489584, 0.040260761274755655, -1.289727463721254, 0.028043105883527483},
       {-0.028552630696677732, 0.14222945574073387, -0.7387776110646705, 0.0024303842465400014}},
      "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)");
}

TEST(Optim, AdamAndAdamWMatchTorch) {
  expect_trajectory(
      maker<Adam>(AdamOptions{.lr = 0.1}),
      {{0.40000000166666666, -0.9000000004545454, 1.9000000007692308, 0.15000000133333333},
       {-0.2906895388565622, -0.06406515943370303, 1.0171095185180405, -0.023466236634908356},
       {-0.1328422440888796, 0.3761718646815966, 0.14727233436340698, -0.008569165099274516}},
      "Adam(lr=0.1)");
  expect_trajectory(
      maker<Adam>(
          AdamOptions{.lr = 0.1, .beta1 = 0.8, .beta2 = 0.9, .weight_decay = 0.1, .amsgrad = true}),
      {{0.4000000015384615, -0.9000000004347826, 1.9000000006666666, 0.1500000012903226},
       {-0.21476551561174573, -0.08858255973350332, 1.0190937233142796, 0.0230872818343677},
       {-0.07266492168583877, 0.1942318526455752, 0.22479203264871045, -0.019762193705752787}},
      "Adam(lr=0.1, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)");
  AdamWOptions w;
  w.lr = 0.1;
  w.weight_decay = 0.1;
  expect_trajectory(
      maker<AdamW>(w),
      {{0.39500000166666666, -0.8900000004545454, 1.8800000007692308, 0.14750000133333332},
       {-0.2879106172560411, -0.01952965088041038, 0.8732750005374431, -0.01723385705454373},
       {-0.11301698800588288, 0.3578428790054337, -0.014628218496633281, -0.013610943870580487}},
      "AdamW(lr=0.1, weight_decay=0.1)");
  AdamWOptions wa;  // AdamW's default weight_decay is 0.01
  wa.lr = 0.05;
  wa.amsgrad = true;
  expect_trajectory(
      maker<AdamW>(wa),
      {{0.44975000083333333, -0.9495000002272728, 1.9490000003846155, 0.1998750006666667},
       {0.02625472736928259, -0.5069949621315708, 1.494851649975463, -0.10153853842889629},
       {-0.23074428107642878, -0.0910040990754087, 1.014095961204805, 0.026767721110097065}},
      "AdamW(lr=0.05, amsgrad=True)");
}

TEST(Optim, AdagradRMSpropLARSMatchTorch) {
  expect_trajectory(
      maker<Adagrad>(AdagradOptions{
          .lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.1, .initial_accumulator_value = 0.1}),
      {{0.4100771197098505, -0.9009319867858592, 1.9021507890483667, 0.1574111078921892},
       {0.12498335808231158, -0.5627224208808398, 1.5376099657332183, 0.008089975862646344},
       {0.017415135885872682, -0.3956467121679247, 1.3350613472612374, 0.00044849643787039516}},
      "Adagrad(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)");
  expect_trajectory(
      maker<RMSprop>(RMSpropOptions{.lr = 0.01}),
      {{0.40000001666666396, -0.9000000045454544, 1.9000000076923071, 0.1500000133333316},
       {0.09531520739095099, -0.5441409896356728, 1.5133902963227566, 0.004358467936850103},
       {-0.019574759615328112, -0.35185411950274925, 1.2743515041989573, 7.445996532965111e-05}},
      "RMSprop(lr=0.01)");
  expect_trajectory(
      maker<RMSprop>(
          RMSpropOptions{.lr = 0.01, .weight_decay = 0.1, .momentum = 0.9, .centered = true}),
      {{0.39949623401409196, -0.8994962228658222, 1.8994962252080851, 0.14949623150763858},
       {-0.4422642193432128, 0.6305408944356924, -0.13346125679175982, 0.12470021039129806},
       {0.13198235065236474, 0.1525602330467288, -1.3027683548935591, -0.08640849906540403}},
      "RMSprop(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1)");
  expect_trajectory(
      maker<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.5}),
      {{0.40000001666666396, -0.9000000045454544, 1.9000000076923071, 0.1500000133333316},
       {-0.08897721520847499, -0.22967567608641826, 1.1211559015242505, 0.007588822345913342},
       {-0.10072028214205807, -0.012524441292730946, 0.689945924616682, 0.00023147001958972286}},
      "RMSprop(lr=0.01, momentum=0.5)");
  expect_trajectory(
      maker<LARS>(
          LARSOptions{.lr = 0.5, .momentum = 0.9, .weight_decay = 0.01, .trust_coefficient = 0.02}),
      {{0.49493473137191546, -0.9814971179040217, 1.988948504811452, 0.2436998105080436},
       {0.295177758665009, -0.31052748442721156, 1.5346926060103734, 0.03393962331863713},
       {-0.029386277903749817, 0.38174460249906766, 0.6402961359984326, -0.08214342508586325}},
      "LARS(lr=0.5, momentum=0.9, weight_decay=0.01, trust_coefficient=0.02)");
}

TEST(Optim, ParameterGroupsHaveTheirOwnHyperParameters) {
  // torch.optim.SGD([{'params': [w]}, {'params': [v], 'lr': 0.05, 'momentum': 0.5,
  // 'weight_decay': 0.1}], lr=0.1, momentum=0.9); v starts at 2*W0 with grad C*v - B.
  Tensor w = from_vector<double>(kW0, {4}), v = w * 2.0;
  SGD opt({ParamGroup{{w}, {}, {}, {}}, ParamGroup{{v}, 0.05, 0.1, {{"momentum", 0.5}}}},
          SGDOptions{.lr = 0.1, .momentum = 0.9});
  for (int s = 0; s < 20; ++s) {
    set_quadratic_grad(w);
    set_quadratic_grad(v, -1);
    opt.step();
  }
  expect_near(w.to_vector<double>(),
              {0.10680046917617318, 0.4841778782511284, -0.9149393673475122, 0.046210072673198495},
              1e-12, "group 0");
  expect_near(
      v.to_vector<double>(),
      {0.16240702183697056, -0.09290086795150701, 1.5029702212440297, 0.00048822874278607007},
      1e-12, "group 1");
  EXPECT_EQ(opt.option(1, "dampening"), 0.0);
  EXPECT_EQ(*opt.groups()[0].weight_decay, 0.0);
}

TEST(Optim, LowPrecisionParametersFollowTheF64Trajectory) {
  Trajectory want = run(maker<Adam>(AdamOptions{.lr = 0.1}));
  Trajectory f32 = run(maker<Adam>(AdamOptions{.lr = 0.1}), DType::f32);
  expect_near(f32.step20, want.step20, 1e-4, "Adam f32");
  Trajectory bf16 = run(maker<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}), DType::bf16);
  Trajectory ref = run(maker<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9}));
  expect_near(bf16.step10, ref.step10, 0.05, "SGD bf16");
}

TEST(Optim, StateDictResumesExactly) {
  Make make = maker<Adam>(AdamOptions{.lr = 0.1, .amsgrad = true});
  Trajectory straight = run(make);
  Tensor w = from_vector<double>(kW0, {4});
  w.set_requires_grad(true);
  std::map<std::string, Tensor> saved;
  {
    auto opt = make({w});
    for (int s = 0; s < 10; ++s) {
      set_quadratic_grad(w);
      opt->step();
    }
    for (auto& [k, t] : opt->state_dict()) saved[k] = t.clone();
  }
  EXPECT_EQ(saved.count("0.0.exp_avg"), 1u);
  EXPECT_EQ(saved.count("0.0.max_exp_avg_sq"), 1u);
  EXPECT_EQ(saved.at("step").item(), 10);
  auto resumed = make({w});
  resumed->load_state_dict(saved);
  EXPECT_EQ(resumed->step_count(), 10);
  for (int s = 0; s < 10; ++s) {
    set_quadratic_grad(w);
    resumed->step();
  }
  EXPECT_EQ(w.to_vector<double>(), straight.step20);
}

/// The message of the Error `fn` throws, or "" when it throws none.
using strata::testing::message_of;

TEST(Optim, BadConfigurationsAreClearErrors) {
  Tensor w = zeros({2}, DType::f64);
  EXPECT_EQ(message_of([&] {
              SGD({ParamGroup{{w}, {}, {}, {{"momentun", 0.9}}}}, SGDOptions{});
            }),
            "[SGD] unknown option 'momentun' in parameter group 0; known options: dampening, "
            "momentum, nesterov");
  EXPECT_EQ(message_of([&] { SGD({w}, SGDOptions{.nesterov = true}); }),
            "[SGD] nesterov in group 0 needs momentum > 0 and dampening == 0, got momentum 0 and "
            "dampening 0");
  EXPECT_EQ(message_of([&] { Adam({w}, AdamOptions{.beta2 = 1.0}); }),
            "[Adam] beta2 of group 0 must be in [0, 1), got 1");
  EXPECT_EQ(message_of([&] { SGD({w}, SGDOptions{.lr = -1}); }),
            "[SGD] learning rate of group 0 must be >= 0, got -1");
  SGD sgd({w}, SGDOptions{.momentum = 0.9});
  EXPECT_EQ(
      message_of([&] {
        sgd.load_state_dict({{"step", scalar_tensor(1)}, {"0.0.exp_avg", zeros({2}, DType::f64)}});
      }),
      "[SGD] load_state_dict: unknown slot 'exp_avg' in key '0.0.exp_avg'; was the "
      "checkpoint made by another optimizer?");
  EXPECT_EQ(message_of([&] {
              sgd.load_state_dict(
                  {{"step", scalar_tensor(1)}, {"0.0.momentum_buffer", zeros({3}, DType::f64)}});
            }),
            "[SGD] load_state_dict: state '0.0.momentum_buffer' is f64[3] cpu but parameter is "
            "f64[2] cpu");
}

// Steps at which the schedule literals were recorded.
const std::vector<int64_t> kPick = {0, 1, 3, 4, 5, 9, 10, 13, 20};

void expect_schedule(const SchedulePtr& s, const D& want, const std::string& what,
                     const std::vector<int64_t>& steps = kPick) {
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_NEAR(s->lr_at(steps[i], 0.1), want[i], 1e-12) << what << " at step " << steps[i];
  }
}

TEST(Schedule, MatchesTorchSchedulers) {
  expect_schedule(step_lr(3, 0.5), {0.1, 0.1, 0.05, 0.05, 0.05, 0.0125, 0.0125, 0.00625, 0.0015625},
                  "StepLR(step_size=3, gamma=0.5)");
  expect_schedule(multistep_lr({2, 5, 9}, 0.3),
                  {0.1, 0.1, 0.03, 0.03, 0.009, 0.0027, 0.0027, 0.0027, 0.0027},
                  "MultiStepLR([2, 5, 9], gamma=0.3)");
  expect_schedule(exponential_lr(0.9),
                  {0.1, 0.09, 0.0729, 0.06561, 0.059049, 0.0387420489, 0.03486784401,
                   0.025418658283290013, 0.01215766545905694},
                  "ExponentialLR(0.9)");
  expect_schedule(polynomial_lr(10, 2), {0.1, 0.081, 0.049, 0.036, 0.025, 0.001, 0, 0, 0},
                  "PolynomialLR(total_iters=10, power=2)");
  expect_schedule(cosine_lr(10, 0.001),
                  {0.1, 0.09757729755661011, 0.07959536998847742, 0.0657963412215599, 0.0505,
                   0.0034227024433899004, 0.001, 0.02140463001152267, 0.10000000000000045},
                  "CosineAnnealingLR(T_max=10, eta_min=0.001)");
  expect_schedule(
      linear_warmup(4, 0.1, cosine_lr(10)),
      {0.010000000000000002, 0.03250000000000001, 0.07750000000000003, 0.1, 0.09755282581475769,
       0.05000000000000001, 0.03454915028125264, 0.002447174185242324, 0.06545084971874766},
      "SequentialLR([LinearLR(start_factor=0.1, total_iters=4), "
      "CosineAnnealingLR(T_max=10)], milestones=[4])");
}

TEST(Schedule, CyclicAndOneCycleMatchTorch) {
  // CyclicLR(base_lr=0.1, max_lr=0.5, step_size_up=4, step_size_down=2, cycle_momentum=False)
  expect_schedule(cyclic_lr(0.5, 4, 2), {0.1, 0.2, 0.4, 0.5, 0.3, 0.4, 0.5, 0.2, 0.3},
                  "CyclicLR triangular");
  expect_schedule(cyclic_lr(0.5, 4, 2, CyclicMode::triangular2),
                  {0.1, 0.2, 0.4, 0.5, 0.3, 0.25, 0.3, 0.125, 0.125}, "CyclicLR triangular2");
  expect_schedule(cyclic_lr(0.5, 4, 2, CyclicMode::exp_range, 0.9),
                  {0.1, 0.19000000000000006, 0.3187000000000001, 0.36244, 0.2180979999999999,
                   0.21622614670000007, 0.2394713760399999, 0.12541865828329, 0.12431533091811392},
                  "CyclicLR exp_range gamma=0.9");
  // OneCycleLR(max_lr=0.1, total_steps=20, cycle_momentum=False)
  expect_schedule(
      one_cycle_lr(20),
      {0.0040000000000000036, 0.013167184270002533, 0.06683281572999747, 0.09083281572999748, 0.1,
       0.0811745653949763, 0.07169430017913009, 0.03887419780637107, 4e-07},
      "OneCycleLR", {0, 1, 3, 4, 5, 9, 10, 13, 19});
  EXPECT_EQ(message_of([] { one_cycle_lr(20)->lr_at(21, 0.1); }),
            "[one_cycle_lr] step 21 is beyond total_steps 20; raise total_steps to cover the "
            "whole run");
}

TEST(Schedule, SchedulerSetsEveryGroupAndResumesExactly) {
  Tensor a = zeros({1}, DType::f64), b = zeros({1}, DType::f64);
  SGD opt({ParamGroup{{a}, 0.1, {}, {}}, ParamGroup{{b}, 0.01, {}, {}}}, SGDOptions{});
  Scheduler sched(opt, linear_warmup(2, 0.5, step_lr(3, 0.5)));
  EXPECT_DOUBLE_EQ(*opt.groups()[0].lr, 0.05);  // step 0 is applied at construction
  EXPECT_DOUBLE_EQ(*opt.groups()[1].lr, 0.005);
  for (int s = 0; s < 7; ++s) sched.step();
  double lr0 = *opt.groups()[0].lr, lr1 = *opt.groups()[1].lr;
  EXPECT_DOUBLE_EQ(lr0, 0.1 * 0.5);  // warmup 2, then step 5 of StepLR(3, 0.5)
  EXPECT_DOUBLE_EQ(lr1, 0.01 * 0.5);
  SGD fresh({ParamGroup{{a}, 0.1, {}, {}}, ParamGroup{{b}, 0.01, {}, {}}}, SGDOptions{});
  Scheduler resumed(fresh, linear_warmup(2, 0.5, step_lr(3, 0.5)));
  resumed.set_step(7);
  EXPECT_EQ(*fresh.groups()[0].lr, lr0);
  EXPECT_EQ(*fresh.groups()[1].lr, lr1);
  EXPECT_EQ(resumed.lr_at(7), lr0);
}

TEST(Clip, GlobalNormMatchesTorch) {
  // a.grad = [3, -4], b.grad = [12]; torch.nn.utils.clip_grad_norm_([a, b], 6.5) -> 13.0 and
  // grads [1.4999998846153937, -1.9999998461538582, 5.999999538461575]; with 6.0 and
  // norm_type=inf -> 12.0 and [1.4999998750000105, -1.9999998333333475, 5.999999500000042].
  Tensor a = zeros({2}, DType::f64), b = zeros({1}, DType::f64);
  auto reset = [&] {
    a.set_grad(from_vector<double>({3, -4}, {2}));
    b.set_grad(from_vector<double>({12}, {1}));
  };
  reset();
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 6.5), 13.0);
  expect_near(a.grad().to_vector<double>(), {1.4999998846153937, -1.9999998461538582}, 1e-15,
              "clip l2 a");
  expect_near(b.grad().to_vector<double>(), {5.999999538461575}, 1e-15, "clip l2 b");
  reset();
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 6.0, std::numeric_limits<double>::infinity()), 12.0);
  expect_near(a.grad().to_vector<double>(), {1.4999998750000105, -1.9999998333333475}, 1e-15,
              "clip inf a");
  reset();
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 100.0), 13.0);  // under the limit: unchanged
  EXPECT_EQ(a.grad().to_vector<double>(), (D{3, -4}));
}

TEST(Clip, PenaltiesAreDifferentiableSums) {
  Tensor a = from_vector<double>({1, -2}, {2}), b = from_vector<double>({3}, {1});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  Tensor l1 = l1_penalty({a, b}), l2 = l2_penalty({a, b});
  EXPECT_DOUBLE_EQ(l1.item(), 6.0);
  EXPECT_DOUBLE_EQ(l2.item(), 14.0);
  (l1 * 0.5 + l2).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (D{2.5, -4.5}));
  EXPECT_EQ(b.grad().to_vector<double>(), (D{6.5}));
}

}  // namespace
}  // namespace strata::optim
