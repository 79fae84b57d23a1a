// CPU training-step throughput of the reference models, printed as one JSON line per case:
// {"case": ..., "per_s": steps per second, "items_per_s": ...}. bench/compare_cpu.sh runs it
// beside PyTorch and prints the ratios.
#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include "core/ops.h"
#include "core/ops/loss.h"
#include "core/optim/adam.h"
#include "models/gpt.h"
#include "models/lenet.h"
#include "models/resnet.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;

/// Runs `step` for at least `seconds` after `warmup` calls; returns calls per second.
double measure(const std::function<void()>& step, int warmup, double seconds) {
  for (int i = 0; i < warmup; ++i) step();
  int n = 0;
  auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds || n < 3) {
    step();
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return n / elapsed;
}

void emit(const std::string& name, double per_s, double items) {
  std::printf("{\"case\": \"%s\", \"per_s\": %.4f, \"items_per_s\": %.1f}\n", name.c_str(), per_s,
              per_s * items);
  std::fflush(stdout);
}

template <class Model>
void bench_classifier(const std::string& name, Model& model, Shape input, int64_t classes,
                      double seconds) {
  Generator gen(1);
  Tensor x = randn(input, gen);
  Tensor y = randint(0, classes, {input[0]}, gen);
  optim::AdamW opt({{model.trainable_parameters(), 1e-3, 0.01, {}}}, {});
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
  };
  emit(name, measure(step, 2, seconds), static_cast<double>(input[0]));
}

void bench_gpt(const std::string& name, int64_t layers, int64_t width, int64_t T, int64_t B,
               double seconds) {
  Generator gen(2);
  models::GPTConfig cfg{.vocab_size = 65,
                        .block_size = T,
                        .n_layer = layers,
                        .n_head = width == 128 ? 4 : width / 64,
                        .n_embd = width};
  models::GPT model(cfg, gen);
  Tensor x = randint(0, 65, {B, T}, gen), y = randint(0, 65, {B, T}, gen);
  optim::AdamW opt({{model.trainable_parameters(), 1e-3, 0.01, {}}}, {});
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = model.loss(x, y);
    loss.backward();
    opt.step();
  };
  emit(name, measure(step, 2, seconds), static_cast<double>(B * T));
}

void bench_sgemm(double seconds) {
  Generator gen(3);
  const int64_t n = 1024;
  Tensor a = randn({n, n}, gen), b = randn({n, n}, gen);
  double flops = 2.0 * n * n * n;
  double strata_rate = measure([&] { matmul(a, b); }, 2, seconds);
  Tensor c = empty({n, n});
  double blas_rate = measure(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n,
                    b.data<float>(), n, 0.0f, c.data<float>(), n);
      },
      2, seconds);
  std::printf(
      "{\"case\": \"sgemm_1024\", \"per_s\": %.4f, \"openblas_per_s\": %.4f, "
      "\"gflops\": %.1f, \"openblas_gflops\": %.1f}\n",
      strata_rate, blas_rate, strata_rate * flops / 1e9, blas_rate * flops / 1e9);
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  using namespace strata;
  double seconds = argc > 1 ? std::stod(argv[1]) : 3.0;
  std::string only = argc > 2 ? argv[2] : "";
  auto want = [&](const char* c) { return only.empty() || only == c; };
  if (want("lenet5_b256")) {
    Generator gen(0);
    models::LeNet5 m(1, 10, gen);
    bench_classifier("lenet5_b256", m, {256, 1, 28, 28}, 10, seconds);
  }
  if (want("gpt_4l_128d_t64_b12")) bench_gpt("gpt_4l_128d_t64_b12", 4, 128, 64, 12, seconds);
  if (want("gpt_6l_384d_t256_b8")) bench_gpt("gpt_6l_384d_t256_b8", 6, 384, 256, 8, seconds);
  if (want("resnet20_b128")) {
    Generator gen(0);
    models::CifarResNet m(20, 10, gen);
    bench_classifier("resnet20_b128", m, {128, 3, 32, 32}, 10, seconds);
  }
  if (want("sgemm_1024")) bench_sgemm(seconds);
  return 0;
}
