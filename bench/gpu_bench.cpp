// GPU throughput of strata on one CUDA device, printed as one JSON line per case: a GPT-2
// small (124M) AdamW training step (tokens/s and MFU against the H100's 989 TFLOP/s dense
// bf16 peak), a ResNet-50 SGD training step (images/s), the fused attention forward and
// forward+backward, and cuBLASLt GEMMs in bf16, TF32 and f32 (TFLOP/s). tools/gpu_check.sh
// runs it beside bench/torch_gpu_bench.py (same shapes) and writes the ratios.
//
//   strata_gpu_bench [--case=all|gemm|attention|gpt2|resnet50, or a comma list] [--batch=16]
//                    [--seq=1024] [--layers=12] [--steps=5] [--warmup=2] [--amp=0|1]
//                    [--gemm_n=8192] [--image_batch=128] [--image_size=224]
//
// --amp=1 runs the model under bf16 autocast; the default (0) is f32 storage with FP32
// cuBLASLt GEMMs (no TF32, no bf16 GEMM kernel yet), which the output says in "precision".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "bench/bench_args.h"
#include "core/autocast.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/availability.h"
#include "core/backend/cuda/linalg.h"
#include "core/ops.h"
#include "core/ops/loss.h"
#include "core/optim/adam.h"
#include "core/optim/sgd.h"
#include "models/gpt.h"
#include "models/resnet_imagenet.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kPeakFlops = 989e12;  // H100 SXM dense bf16 tensor-core peak

/// Seconds per call of `step` on `device`: `warmup` calls, then `n` timed ones, with the
/// device synchronised before the clock starts and stops.
double seconds_per_call(const std::function<void()>& step, Device device, int warmup, int n) {
  for (int i = 0; i < warmup; ++i) step();
  cuda_backend().synchronize(device);
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) step();
  cuda_backend().synchronize(device);
  return std::chrono::duration<double>(Clock::now() - start).count() / n;
}

void bench_gpt2(const bench::BenchArgs& a, Device dev) {
  const int64_t B = static_cast<int64_t>(a.num.at("batch")),
                T = static_cast<int64_t>(a.num.at("seq"));
  const int64_t L = static_cast<int64_t>(a.num.at("layers")), C = 768, V = 50304;
  const bool amp = a.num.at("amp") != 0;
  Generator gen(2);
  models::GPTConfig cfg{.vocab_size = V, .block_size = T, .n_layer = L, .n_head = 12, .n_embd = C};
  models::GPT model(cfg, gen);
  model.to(dev);
  Tensor x = randint(0, V, {B, T}, gen).to(dev), y = randint(0, V, {B, T}, gen).to(dev);
  optim::AdamW opt({{model.trainable_parameters(), 6e-4, 0.1, {}}}, {});
  double loss_value = 0;
  auto step = [&] {
    opt.zero_grad();
    Tensor loss;
    {
      AutocastGuard guard(amp ? std::optional<DType>(DType::bf16) : std::nullopt);
      loss = model.loss(x, y);
    }
    loss.backward();
    opt.step();
  };
  const double s = seconds_per_call(step, dev, static_cast<int>(a.num.at("warmup")),
                                    static_cast<int>(a.num.at("steps")));
  {
    NoGradGuard guard;
    loss_value = model.loss(x, y).item();
  }
  // Training FLOPs per token as in PaLM / nanoGPT's estimate_mfu: 6 N for the weights plus
  // 12 L C T for the attention scores and their use (forward and backward), N without the
  // position embedding (a lookup; the tied wte stays: it is the head's GEMM), as nanoGPT's
  // get_num_params(): 340,712 tok/s is then 29.5% of 989 TFLOP/s, the reference.
  const double n_params = static_cast<double>(model.num_parameters());
  const double flops_per_token = 6 * (n_params - static_cast<double>(T * C)) + 12.0 * L * C * T;
  const double tokens_per_s = B * T / s;
  const MemoryStats mem = cuda_backend().memory_stats(dev);
  std::printf(
      "{\"case\": \"gpt2_124m_train_step\", \"precision\": \"%s\", \"batch\": %lld, \"seq\": "
      "%lld, \"layers\": %lld, \"params\": %.0f, \"step_ms\": %.2f, \"tokens_per_s\": %.1f, "
      "\"mfu\": %.4f, \"peak_flops\": %.3g, \"loss_after\": %.4f, \"peak_mem_gib\": %.2f}\n",
      amp ? "bf16 autocast (f32 master weights)" : "f32 (FP32 cuBLASLt GEMMs, no TF32)",
      static_cast<long long>(B), static_cast<long long>(T), static_cast<long long>(L), n_params,
      s * 1e3, tokens_per_s, tokens_per_s * flops_per_token / kPeakFlops, kPeakFlops, loss_value,
      static_cast<double>(mem.peak_bytes) / (1 << 30));
  std::fflush(stdout);
}

/// torchvision's ResNet-50 trained with SGD (momentum 0.9) on random images and labels;
/// batch norm in training mode, NCHW, the loss under autocast as in torch's recipe.
void bench_resnet50(const bench::BenchArgs& a, Device dev) {
  const int64_t B = static_cast<int64_t>(a.num.at("image_batch")),
                S = static_cast<int64_t>(a.num.at("image_size"));
  const bool amp = a.num.at("amp") != 0;
  Generator gen(5);
  models::ImageNetResNet model(50, 1000, gen);
  model.to(dev);
  Tensor x = randn({B, 3, S, S}, gen).to(dev), y = randint(0, 1000, {B}, gen).to(dev);
  optim::SGD opt(model.trainable_parameters(), {.lr = 0.1, .momentum = 0.9});
  auto loss_of = [&] {
    AutocastGuard guard(amp ? std::optional<DType>(DType::bf16) : std::nullopt);
    return cross_entropy(model.forward(x), y);
  };
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = loss_of();
    loss.backward();
    opt.step();
  };
  const double s = seconds_per_call(step, dev, static_cast<int>(a.num.at("warmup")),
                                    static_cast<int>(a.num.at("steps")));
  double loss_value = 0;
  {
    NoGradGuard guard;
    loss_value = loss_of().item();
  }
  const MemoryStats mem = cuda_backend().memory_stats(dev);
  std::printf(
      "{\"case\": \"resnet50_train_step\", \"precision\": \"%s\", \"batch\": %lld, "
      "\"image_size\": %lld, \"params\": %lld, \"step_ms\": %.2f, \"images_per_s\": %.1f, "
      "\"loss_after\": %.4f, \"peak_mem_gib\": %.2f}\n",
      amp ? "bf16 autocast (f32 master weights)" : "f32 (no TF32)", static_cast<long long>(B),
      static_cast<long long>(S), static_cast<long long>(model.num_parameters()), s * 1e3, B / s,
      loss_value, static_cast<double>(mem.peak_bytes) / (1 << 30));
  std::fflush(stdout);
}

/// Whether --case (all, one case or a comma list) asks for `name`.
bool wants(const std::string& cases, const std::string& name) {
  if (cases == "all") return true;
  return ("," + cases + ",").find("," + name + ",") != std::string::npos;
}

/// One n x n x n GEMM per precision: bf16 and exact f32 through matmul, TF32 through the
/// kernel (the op layer has no TF32 switch yet); TFLOP/s against each precision's H100 peak.
void bench_gemm(const bench::BenchArgs& a, Device dev) {
  const int64_t n = static_cast<int64_t>(a.num.at("gemm_n"));
  Generator gen(4);
  Tensor x = randn({n, n}, gen).to(dev), y = randn({n, n}, gen).to(dev);
  Tensor xb = x.to(DType::bf16), yb = y.to(DType::bf16);
  Tensor out = empty({1, n, n}, DType::f32, dev);
  const int warmup = static_cast<int>(a.num.at("warmup")), calls = 10;
  NoGradGuard guard;
  const double flops = 2.0 * n * n * n;
  const double bf16 = seconds_per_call([&] { matmul(xb, yb); }, dev, warmup, calls);
  const double f32 = seconds_per_call([&] { matmul(x, y); }, dev, warmup, calls);
  const double tf32 = seconds_per_call(
      [&] { cuda::gemm(x.unsqueeze(0), y.unsqueeze(0), out, 1.0, 0.0, true); }, dev, warmup, calls);
  std::printf(
      "{\"case\": \"gemm_%lld\", \"bf16_tflops\": %.1f, \"tf32_tflops\": %.1f, "
      "\"f32_tflops\": %.1f, \"peaks_tflops\": {\"bf16\": 989, \"tf32\": 494, \"f32\": 67}}\n",
      static_cast<long long>(n), flops / bf16 / 1e12, flops / tf32 / 1e12, flops / f32 / 1e12);
  std::fflush(stdout);
}

void bench_attention(const bench::BenchArgs& a, Device dev, DType dtype) {
  const int64_t B = static_cast<int64_t>(a.num.at("batch")),
                T = static_cast<int64_t>(a.num.at("seq"));
  const int64_t H = 12, D = 64;
  Generator gen(3);
  auto make = [&] { return randn({B, H, T, D}, gen).to(dtype).to(dev).set_requires_grad(); };
  Tensor q = make(), k = make(), v = make();
  Tensor g = randn({B, H, T, D}, gen).to(dtype).to(dev);
  const int warmup = static_cast<int>(a.num.at("warmup")), n = 10;
  const double fwd = seconds_per_call(
      [&] {
        NoGradGuard guard;
        scaled_dot_product_attention(q, k, v, {}, true);
      },
      dev, warmup, n);
  const double fwd_bwd = seconds_per_call(
      [&] {
        q.zero_grad();
        k.zero_grad();
        v.zero_grad();
        Tensor y = scaled_dot_product_attention(q, k, v, {}, true);
        sum(mul(y, g)).backward();
      },
      dev, warmup, n);
  // Causal: half of the 4 B H T^2 D forward FLOPs; backward is 2.5x the forward.
  const double flops_fwd = 4.0 * B * H * T * T * D / 2;
  std::printf(
      "{\"case\": \"attention_causal_%s\", \"shape\": [%lld, %lld, %lld, %lld], \"fwd_ms\": %.3f, "
      "\"fwd_bwd_ms\": %.3f, \"fwd_tflops\": %.2f, \"fwd_bwd_tflops\": %.2f, \"note\": "
      "\"fwd_bwd includes the loss sum(y * g) and its backward\"}\n",
      std::string(dtype_name(dtype)).c_str(), static_cast<long long>(B), static_cast<long long>(H),
      static_cast<long long>(T), static_cast<long long>(D), fwd * 1e3, fwd_bwd * 1e3,
      flops_fwd / fwd / 1e12, 3.5 * flops_fwd / fwd_bwd / 1e12);
  std::fflush(stdout);
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  using namespace strata;
  try {
    bench::BenchArgs defaults{{{"batch", 16},
                               {"seq", 1024},
                               {"layers", 12},
                               {"steps", 5},
                               {"warmup", 2},
                               {"amp", 0},
                               {"gemm_n", 8192},
                               {"image_batch", 128},
                               {"image_size", 224}},
                              {{"case", "all"}}};
    const bench::BenchArgs a = bench::parse_bench_args(argc, argv, "gpu_bench", defaults);
    const std::string c = a.str.at("case");
    int64_t known = 0;  // every name in the list must be a case
    for (const char* n : {"gemm", "attention", "gpt2", "resnet50"}) known += wants(c, n) ? 1 : 0;
    check(c == "all" || known == std::count(c.begin(), c.end(), ',') + 1,
          "[gpu_bench] unknown --case=", c,
          "; use all, or gemm, attention, gpt2, resnet50 (one, or a comma list)");
    const std::string why = cuda_unavailable_reason();
    check(why.empty(), "[gpu_bench] needs a CUDA GPU: ", why);
    const Device dev = Device::cuda(0);
    if (wants(c, "gemm")) bench_gemm(a, dev);
    if (wants(c, "attention")) {
      bench_attention(a, dev, DType::bf16);
      bench_attention(a, dev, DType::f32);
    }
    if (wants(c, "gpt2")) bench_gpt2(a, dev);
    if (wants(c, "resnet50")) bench_resnet50(a, dev);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
