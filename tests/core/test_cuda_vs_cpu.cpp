// The CUDA backend against the CPU reference: one table of cases (tests/core/cuda_case.h),
// each running an op forward and backward on both devices from the same inputs and comparing
// every output and gradient with dtype-scaled tolerances. Without a GPU every case skips.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/autocast.h"
#include "core/backend/backend.h"
#include "core/backend/cpu/linalg.h"
#include "core/backend/cpu/optim.h"
#include "core/backend/cuda/availability.h"
#include "core/backend/cuda/linalg.h"
#include "core/backend/cuda/optim.h"
#include "core/ops.h"
#include "tests/core/cuda_case.h"
#include "tests/support/values.h"

namespace strata {
namespace {

using namespace cuda_case;

// ---- the table ----

struct UnarySpec {
  const char* name;
  std::function<Tensor(const Tensor&)> fn;
  double lo, hi;
};

std::vector<UnarySpec> unary_specs() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, -2, 2},
      {"exp", [](const Tensor& x) { return exp(x); }, -3, 3},
      {"log", [](const Tensor& x) { return log(x); }, 0.1, 4},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.1, 4},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, 0.1, 4},
      {"abs", [](const Tensor& x) { return abs(x); }, -2, 2},
      {"sign", [](const Tensor& x) { return sign(x); }, -2, 2},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -3, 3},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -6, 6},
      {"relu", [](const Tensor& x) { return relu(x); }, -2, 2},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1); }, -2, 2},
      {"gelu", [](const Tensor& x) { return gelu(x); }, -4, 4},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }, -4, 4},
      {"silu", [](const Tensor& x) { return silu(x); }, -4, 4},
      {"sin", [](const Tensor& x) { return sin(x); }, -3, 3},
      {"cos", [](const Tensor& x) { return cos(x); }, -3, 3},
      {"erf", [](const Tensor& x) { return erf(x); }, -2, 2},
      {"square", [](const Tensor& x) { return square(x); }, -2, 2},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, 0.2, 3},
      {"pow_scalar", [](const Tensor& x) { return pow(x, 2.5); }, 0.1, 3},
      {"log1p", [](const Tensor& x) { return log1p(x); }, -0.5, 3},
      {"expm1", [](const Tensor& x) { return expm1(x); }, -2, 2},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 1.0); }, -2, 2},
  };
}

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);

void add_elementwise(std::vector<OpCase>& cases) {
  const std::pair<const char*, BinaryFn> binaries[] = {
      {"add", add},         {"sub", sub},         {"mul", mul}, {"div", div},
      {"maximum", maximum}, {"minimum", minimum}, {"pow", pow}};
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (auto [name, fn] : binaries) {
      // a (4, 1, 5) against b (3, 1): broadcasting on both sides; b > 0 for div and pow.
      cases.push_back(
          {str_cat(name, "_broadcast_", dtype_name(t)), t, [fn](Device d, DType t) {
             Tensor a = input(d, t, {4, 1, 5}, 1, 0.5, 2), b = input(d, t, {3, 1}, 2, 0.5, 2);
             return with_grads(fn(a, b), {a, b});
           }});
    }
  }
  // bf16/f16 compute in f32 inside the CUDA kernels and through f32 copies on the CPU: one
  // rounding each, so the same values up to f32 math differences.
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (const UnarySpec& u : unary_specs()) {
      cases.push_back({str_cat(u.name, "_", dtype_name(t)), t, [u](Device d, DType t) {
                         Tensor x = input(d, t, {3, 67}, 3, u.lo, u.hi);
                         return with_grads(u.fn(x), {x});
                       }});
    }
    // Large enough for many blocks of the vectorised path and a ragged tail.
    cases.push_back({str_cat("gelu_large_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {513, 1031}, 47, -4, 4);
                       return with_grads(gelu(x, true), {x});
                     }});
    cases.push_back({str_cat("strided_mul_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor a = input(d, t, {6, 8}, 4), b = input(d, t, {8, 6}, 5);
                       return with_grads(mul(a.t(), b.slice(1, 0, 6, 1)), {a, b});
                     }});
    cases.push_back({str_cat("where_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor a = input(d, t, {5, 7}, 6), b = input(d, t, {7}, 7);
                       Tensor cond = gt(a, scalar_like(0.3, a));
                       return with_grads(where(cond, a, b), {a, b});
                     }});
    cases.push_back({str_cat("compare_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor a = input(d, t, {4, 9}, 8), b = input(d, t, {9}, 9);
                       return Outs{lt(a, b), ge(a, b), eq(a, a), ne(a, b)};
                     }});
  }
  for (DType t : {DType::i32, DType::i64}) {
    cases.push_back({str_cat("add_mul_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor a = input(d, DType::f64, {5, 6}, 10, -50, 50).to(t);
                       Tensor b = input(d, DType::f64, {6}, 11, -50, 50).to(t);
                       return Outs{add(a, b), mul(a, b), maximum(a, b), neg(a), abs(a)};
                     }});
  }
}

void add_copies(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    cases.push_back({str_cat("transpose_contiguous_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {3, 5, 7}, 12);
                       return with_grads(x.permute({2, 0, 1}).contiguous(), {x});
                     }});
    // Conversions round to nearest even on both devices: exact agreement expected.
    cases.push_back({str_cat("convert_", dtype_name(t)), DType::i64,
                     [t](Device d, DType) {
                       Tensor x = input(d, DType::f64, {4, 33}, 13, -300, 300, false);
                       Tensor y = x.to(t);
                       return Outs{y, y.to(DType::f32), y.to(DType::i32), y.t().to(DType::f64)};
                     },
                     0});
  }
  for (DType t : {DType::f32, DType::bf16}) {
    cases.push_back({str_cat("concat_stack_pad_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor a = input(d, t, {3, 4}, 54), b = input(d, t, {3, 2}, 55);
                       Tensor c = input(d, t, {3, 6}, 56);
                       Tensor y = stack({concat({a, b}, 1), c}, 0);  // (2, 3, 6)
                       return with_grads(pad(y, {1, 2, 0, 1}, 0.5), {a, b, c});
                     }});
  }
  for (DType t : {DType::f32, DType::f64}) {
    // Repeated indices in a column: scatter keeps the last write, scatter_add sums in order.
    cases.push_back({str_cat("gather_scatter_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {4, 5}, 57), s = input(d, t, {3, 5}, 58);
                       Tensor i = indices(d, {0, 2, 1, 3, 3, 1, 1, 0, 2, 0, 3, 1, 0, 2, 3}, {3, 5});
                       Tensor y = concat({gather(x, 0, i), scatter(x, 0, i, s, false),
                                          scatter(x, 0, i, s, true), gather(x.t(), 1, i.t()).t()},
                                         0);
                       return with_grads(y, {x, s});
                     }});
  }
  for (DType t : {DType::f32, DType::bf16}) {
    cases.push_back({str_cat("upsample_nearest2d_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 3, 4, 5}, 59);
                       return with_grads(upsample_nearest2d(x, 2, 3), {x});
                     }});
  }
  // The in-place ops of optimizers and gradient accumulation, on views.
  for (DType t : {DType::f32, DType::bf16}) {
    cases.push_back({str_cat("inplace_", dtype_name(t)), t, [](Device d, DType t) {
                       NoGradGuard guard;
                       Tensor a = input(d, t, {6, 10}, 52, -2, 2, false).clone();
                       Tensor b = input(d, t, {10}, 53, -2, 2, false);
                       add_(a, b, 0.5);
                       mul_(a, 3.0);
                       Tensor rows = a.slice(0, 1, 5, 2);
                       fill_(rows, -1.25);
                       Tensor cols = a.slice(1, 2, 9, 3);
                       copy_(cols, b.slice(0, 0, 3).to(DType::f64));
                       return Outs{a, clamp(a, -1.0, 2.5)};
                     }});
  }
  cases.push_back({"index_select_add_f32", DType::f32,
                   [](Device d, DType t) {
                     Tensor x = input(d, t, {4, 6, 3}, 14), s = input(d, t, {4, 5, 3}, 15);
                     Tensor i = indices(d, {5, 0, 2, 2, 1}, {5});
                     return with_grads(
                         add(index_select(x, 1, i), index_add(x, 1, i, s).slice(1, 0, 5)), {x, s});
                   },
                   0});  // index_add is deterministic: bitwise equal
}

void add_reductions(std::vector<OpCase>& cases) {
  using Dims = std::vector<int64_t>;
  for (DType t : {DType::f32, DType::f64}) {
    for (const Dims& dims : {Dims{}, Dims{0}, Dims{1}, Dims{2}, Dims{0, 2}}) {
      std::string tag;
      for (int64_t k : dims) tag += std::to_string(k);
      if (dims.empty()) tag = "all";
      cases.push_back({str_cat("sum_", tag, "_", dtype_name(t)), t, [dims](Device d, DType t) {
                         Tensor x = input(d, t, {6, 300, 5}, 16);
                         return with_grads(sum(x, dims), {x});
                       }});
      cases.push_back({str_cat("max_", tag, "_", dtype_name(t)), t, [dims](Device d, DType t) {
                         Tensor x = input(d, t, {6, 300, 5}, 17);
                         return with_grads(max(x, dims), {x});
                       }});
    }
    // Long columns: the rows are split over blocks, then the partials combined.
    cases.push_back({str_cat("column_reduce_split_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {4001, 7}, 48);
                       Outs out = with_grads(add(sum(x, {0}), max(x, {0})), {x});
                       out.push_back(argmax(x.detach(), 0));
                       return out;
                     }});
    // Few long rows (a whole-tensor reduction has one): each row is split over blocks and the
    // partials combined in order; integer values put tied maxima in many chunks.
    cases.push_back(
        {str_cat("long_rows_split_", dtype_name(t)), t, [](Device d, DType t) {
           Tensor x = input(d, t, {3, 100003}, 49);
           Tensor ties = input(d, DType::f64, {3, 100003}, 50, -3, 3, false).to(DType::i64).to(t);
           Outs out = with_grads(add(sum(x), max(x)), {x});
           for (const Tensor& r :
                {argmax(ties, 1), argmax(ties.reshape({-1}), 0), sum(ties), max(ties, {1})}) {
             out.push_back(r);
           }
           return out;
         }});
    cases.push_back({str_cat("mean_var_min_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {7, 129}, 18);
                       return with_grads(add(add(mean(x, {1}), var(x, {1})), min(x, {1})), {x});
                     }});
    cases.push_back({str_cat("argmax_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {9, 257}, 19);
                       return Outs{argmax(x, 1), argmax(x, 0), argmax(x.t(), 1)};
                     }});
  }
  cases.push_back({"sum_max_i64", DType::i64, [](Device d, DType t) {
                     Tensor x = input(d, DType::f64, {10, 31}, 20, -1000, 1000).to(t);
                     return Outs{sum(x, {1}), sum(x, {0}), max(x, {1}), argmax(x, 1)};
                   }});
}

void add_softmax_loss(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    // Rows of 1000 keep every probability below ~0.011, under bf16's absolute floor (0.02):
    // scaled by 1024 (exact), outputs and gradients are O(1) and really compared.
    cases.push_back({str_cat("softmax_last_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {5, 1000}, 21, -5, 5);
                       return with_grads(mul(softmax(x, -1), scalar_like(1024.0, x)), {x});
                     }});
    cases.push_back({str_cat("log_softmax_mid_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {3, 17, 6}, 22, -5, 5);
                       return with_grads(log_softmax(x, 1), {x});
                     }});
    cases.push_back({str_cat("logsumexp_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {4, 50}, 23, -5, 5);
                       return with_grads(logsumexp(x, 1), {x});
                     }});
    cases.push_back({str_cat("cross_entropy_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {6, 11}, 24, -3, 3);
                       Tensor y = indices(d, {3, 0, -100, 10, 5, 5}, {6});
                       return with_grads(cross_entropy(x, y, -100, 0.1), {x});
                     }});
    cases.push_back({str_cat("cross_entropy_spatial_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 4, 3}, 25, -3, 3);
                       Tensor y = indices(d, {0, 1, 3, 2, 2, 0}, {2, 3});
                       return with_grads(cross_entropy(x, y, -100, 0.0, Reduction::sum), {x});
                     }});
  }
  // Under bf16 autocast: the loss is f32 (CUDA reads the bf16 logits as they are, the CPU an
  // f32 copy) and the gradient comes back in bf16. Rows longer than a block, with smoothing.
  cases.push_back({"cross_entropy_autocast_bf16", DType::bf16, [](Device d, DType t) {
                     Tensor x = input(d, t, {5, 1000}, 26, -4, 4);
                     Tensor y = indices(d, {3, 999, -100, 0, 512}, {5});
                     AutocastGuard amp(DType::bf16);
                     Tensor loss = cross_entropy(x, y, -100, 0.05);
                     check(loss.dtype() == DType::f32, "autocast cross_entropy gave ", loss.desc());
                     // Probabilities below 0.01 leave the non-target gradients under bf16's
                     // absolute floor (0.02): scale the loss (exactly) so that they count.
                     return with_grads(mul(loss, scalar_like(4096.0, loss)), {x});
                   }});
}

void add_norm_embedding_dropout(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    cases.push_back({str_cat("layer_norm_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {4, 7, 300}, 26, -3, 3);
                       Tensor w = input(d, t, {300}, 27), b = input(d, t, {300}, 28);
                       return with_grads(layer_norm(x, {300}, w, b, 1e-5), {x, w, b});
                     }});
    // Many short rows: the weight and bias gradients sum over split row chunks.
    cases.push_back({str_cat("layer_norm_tall_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2001, 64}, 49, -3, 3);
                       Tensor w = input(d, t, {64}, 50), b = input(d, t, {64}, 51);
                       return with_grads(layer_norm(x, {64}, w, b, 1e-5), {x, w, b});
                     }});
    cases.push_back({str_cat("group_norm_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 6, 5, 5}, 29, -3, 3);
                       Tensor w = input(d, t, {6}, 30), b = input(d, t, {6}, 31);
                       return with_grads(group_norm(x, 3, w, b, 1e-5), {x, w, b});
                     }});
    // Repeated indices add up in index order on both devices: bitwise equal.
    cases.push_back({str_cat("embedding_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor w = input(d, t, {20, 16}, 32);
                       Tensor i = indices(d, {3, 0, 7, 3, 19, 7, 7, 2}, {2, 4});
                       return with_grads(embedding(w, i, 2), {w});
                     },
                     0});
    cases.push_back({str_cat("dropout_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {37, 41}, 33);
                       Generator gen(2024, 5);  // the same (seed, offset): the same mask
                       return with_grads(dropout(x, 0.3, true, gen), {x});
                     }});
  }
}

// Batch norm in training mode (batch statistics, running-stat update) and eval mode (running
// statistics); the running buffers stay f32 under bf16 inputs, as in mixed precision.
void add_batch_norm(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    // The CUDA statistics split the samples over blocks: one sample per block ({4, 5, 6, 7},
    // {64, 3, 20, 20}), uneven slices ({6, 300, 3, 3}: 4 slices of 6 samples), S = 1 ({33, 8}).
    const Shape shapes[] = {{4, 5, 6, 7}, {33, 8}, {64, 3, 20, 20}, {6, 300, 3, 3}};
    const char* names[] = {"4d_", "2d_", "many_samples_", "uneven_slices_"};
    for (size_t k = 0; k < 4; ++k) {
      const Shape shape = shapes[k];
      cases.push_back(
          {str_cat("batch_norm_train_", names[k], dtype_name(t)), t, [shape](Device d, DType t) {
             const int64_t C = shape[1];
             const DType st = t == DType::f64 ? t : DType::f32;
             Tensor x = input(d, t, shape, 110, -3, 3);
             Tensor w = input(d, t, {C}, 111), b = input(d, t, {C}, 112);
             Tensor rm = input(d, st, {C}, 113, -1, 1, false);
             Tensor rv = input(d, st, {C}, 114, 0.5, 2, false);
             Outs out = with_grads(batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5), {x, w, b});
             out.push_back(rm);
             out.push_back(rv);
             return out;
           }});
    }
    if (t == DType::bf16 || t == DType::f16) {
      // As under autocast: a half activation with f32 parameters (CUDA reads and writes the
      // activation as it is, the CPU normalises an f32 copy).
      cases.push_back(
          {str_cat("batch_norm_f32_params_", dtype_name(t)), t, [](Device d, DType t) {
             Tensor x = input(d, t, {8, 6, 5, 5}, 121, -3, 3);
             Tensor w = input(d, DType::f32, {6}, 122), b = input(d, DType::f32, {6}, 123);
             Tensor rm = input(d, DType::f32, {6}, 124, -1, 1, false);
             Tensor rv = input(d, DType::f32, {6}, 125, 0.5, 2, false);
             Outs out = with_grads(batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5), {x, w, b});
             out.push_back(rm);
             out.push_back(rv);
             return out;
           }});
    }
    cases.push_back({str_cat("batch_norm_no_affine_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {3, 4, 5, 5}, 115, -3, 3);
                       return with_grads(batch_norm(x, {}, {}, {}, {}, true, 0.1, 1e-5), {x});
                     }});
    cases.push_back({str_cat("batch_norm_eval_", dtype_name(t)), t, [](Device d, DType t) {
                       const DType st = t == DType::f64 ? t : DType::f32;
                       Tensor x = input(d, t, {4, 5, 6, 7}, 116, -3, 3);
                       Tensor w = input(d, t, {5}, 117), b = input(d, t, {5}, 118);
                       Tensor rm = input(d, st, {5}, 119, -1, 1, false);
                       Tensor rv = input(d, st, {5}, 120, 0.5, 2, false);
                       return with_grads(batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5), {x, w, b});
                     }});
  }
}

// Pooling with overlapping and padded windows (the adjoints sum several outputs per input),
// adaptive windows that do not divide the input, and ResNet's global average.
void add_pool(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    cases.push_back({str_cat("max_pool2d_overlap_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 3, 9, 8}, 130);
                       return with_grads(max_pool2d(x, {3, 3}, {2, 2}, {1, 1}), {x});
                     }});
    cases.push_back({str_cat("max_pool2d_rect_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 2, 7, 10}, 131);
                       return with_grads(max_pool2d(x, {2, 3}, {1, 2}, {0, 1}), {x});
                     }});
    cases.push_back({str_cat("avg_pool2d_overlap_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 3, 9, 8}, 132);
                       return with_grads(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}), {x});
                     }});
    cases.push_back({str_cat("avg_pool2d_rect_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 2, 7, 10}, 133);
                       return with_grads(avg_pool2d(x, {2, 3}, {1, 2}, {0, 1}), {x});
                     }});
    cases.push_back({str_cat("adaptive_avg_pool2d_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {2, 3, 7, 11}, 134);
                       return with_grads(adaptive_avg_pool2d(x, {3, 5}), {x});
                     }});
    cases.push_back(
        {str_cat("adaptive_avg_pool2d_upsample_", dtype_name(t)), t, [](Device d, DType t) {
           Tensor x = input(d, t, {1, 2, 3, 4}, 135);
           return with_grads(adaptive_avg_pool2d(x, {5, 6}), {x});
         }});
    cases.push_back({str_cat("global_avg_pool_", dtype_name(t)), t, [](Device d, DType t) {
                       Tensor x = input(d, t, {4, 16, 7, 7}, 136);
                       return with_grads(adaptive_avg_pool2d(x, {1, 1}), {x});
                     }});
  }
  // Double backward: the gradient of max_pool2d's backward is a gather at the argmax.
  cases.push_back({"max_pool2d_double_backward_f64", DType::f64, [](Device d, DType t) {
                     Tensor x = input(d, t, {1, 2, 6, 6}, 137);
                     Tensor y = max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
                     Tensor gy = input(d, t, y.shape(), 138);
                     Tensor gx = grad({y}, {x}, {gy}, true, true)[0];
                     return with_grads(gx, {gy});
                   }});
}

void add_linalg(std::vector<OpCase>& cases) {
  // bf16/f16 run on cuBLASLt's tensor cores (f32 accumulation), the CPU in f32 then rounds.
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    cases.push_back({str_cat("matmul_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor a = input(d, t, {37, 65}, 34), b = input(d, t, {65, 23}, 35);
                       return with_grads(matmul(a, b), {a, b});
                     },
                     8});
    cases.push_back({str_cat("matmul_batched_broadcast_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor a = input(d, t, {2, 3, 9, 17}, 36), b = input(d, t, {3, 17, 5}, 37);
                       return with_grads(matmul(a, b), {a, b});
                     },
                     8});
    cases.push_back({str_cat("matmul_transposed_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor a = input(d, t, {31, 12}, 38), b = input(d, t, {19, 31}, 39);
                       return with_grads(matmul(a.t(), b.t()), {a, b});
                     },
                     8});
    cases.push_back({str_cat("linear_bias_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor x = input(d, t, {4, 6, 40}, 40), w = input(d, t, {24, 40}, 41);
                       Tensor b = input(d, t, {24}, 42);
                       return with_grads(linear(x, w, b), {x, w, b});
                     },
                     8});
    cases.push_back({str_cat("matvec_", dtype_name(t)), t,
                     [](Device d, DType t) {
                       Tensor a = input(d, t, {33, 20}, 43), v = input(d, t, {20}, 44);
                       return with_grads(matmul(a, v), {a, v});
                     },
                     8});
  }
  // TF32 rounds operands to 10 mantissa bits: compared at 2^-10-ish relative error.
  cases.push_back({"gemm_tf32_f32", DType::f32,
                   [](Device d, DType t) {
                     Tensor a = input(d, t, {1, 64, 128}, 45, -1, 1, false);
                     Tensor b = input(d, t, {1, 128, 48}, 46, -1, 1, false);
                     Tensor out = zeros({1, 64, 48}, t, d);
                     if (d.is_cuda()) {
                       cuda::gemm(a, b, out, 1.0, 0.0, true);
                     } else {
                       cpu::gemm(a, b, out, 1.0, 0.0);
                     }
                     return Outs{out};
                   },
                   250});
  // The same through the op layer: linear with its bias under a Tf32Guard (the bias rides
  // cuBLASLt's epilogue on the GPU), forward and backward; the CPU computes exact f32.
  cases.push_back({"linear_bias_tf32_guard_f32", DType::f32,
                   [](Device d, DType t) {
                     Tf32Guard tf32(true);
                     Tensor x = input(d, t, {24, 96}, 47, -1, 1);
                     Tensor w = input(d, t, {40, 96}, 48, -1, 1), b = input(d, t, {40}, 49);
                     return with_grads(linear(x, w, b), {x, w, b});
                   },
                   250});
}

// cuDNN convolutions: f32 and f64 on FMA algorithms (compared at their precision), bf16 and
// f16 on tensor cores with f32 accumulation (the CPU computes them in f32 and rounds).
void add_conv(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    cases.push_back(
        {str_cat("conv2d_pad_", dtype_name(t)), t,
         [](Device d, DType t) {
           Tensor x = input(d, t, {2, 3, 9, 8}, 100), w = input(d, t, {4, 3, 3, 3}, 101);
           Tensor b = input(d, t, {4}, 102);
           return with_grads(conv2d(x, w, b, {.padding = {1, 1}}), {x, w, b});
         },
         8});
    cases.push_back(
        {str_cat("conv2d_stride_dilation_groups_", dtype_name(t)), t,
         [](Device d, DType t) {
           Tensor x = input(d, t, {2, 4, 11, 10}, 103), w = input(d, t, {6, 2, 3, 3}, 104);
           Conv2dParams p{.stride = {2, 1}, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2};
           return with_grads(conv2d(x, w, {}, p), {x, w});
         },
         8});
    cases.push_back(
        {str_cat("conv_transpose2d_", dtype_name(t)), t,
         [](Device d, DType t) {
           Tensor x = input(d, t, {2, 4, 5, 5}, 105), w = input(d, t, {4, 3, 3, 3}, 106);
           Tensor b = input(d, t, {3}, 107);
           Conv2dParams p{.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}};
           return with_grads(conv_transpose2d(x, w, b, p), {x, w, b});
         },
         8});
    // output_padding >= stride (allowed below the dilation): cuDNN derives a larger size for
    // the underlying convolution, whose extra rows and columns lie outside the op.
    cases.push_back(
        {str_cat("conv_transpose2d_big_output_padding_", dtype_name(t)), t,
         [](Device d, DType t) {
           Tensor x = input(d, t, {1, 2, 4, 4}, 108), w = input(d, t, {2, 2, 3, 3}, 109);
           Conv2dParams p{.stride = {1, 1}, .dilation = {2, 2}, .output_padding = {1, 1}};
           return with_grads(conv_transpose2d(x, w, {}, p), {x, w});
         },
         8});
  }
}

/// Three optimizer steps through the fused kernels (CUDA: all tensors in one launch).
template <class Hyper, class CpuStep, class CudaStep>
Outs optimizer_steps(Device d, DType t, int states, const Hyper& h, CpuStep cpu_step,
                     CudaStep cuda_step) {
  const Shape shapes[] = {{33}, {4, 50}, {1000}};
  std::vector<Tensor> params, grads;
  std::vector<std::vector<Tensor>> state(states);
  for (int i = 0; i < 3; ++i) {
    params.push_back(input(d, t, shapes[i], 50 + i, -1, 1, false));
    grads.push_back(input(d, t, shapes[i], 60 + i, -1, 1, false));
    for (int s = 0; s < states; ++s) {
      state[s].push_back(zeros(shapes[i], t == DType::f64 ? t : DType::f32, d));
    }
  }
  for (int step = 0; step < 3; ++step) {
    if (d.is_cuda()) {
      cuda_step(params, grads, state, h, step);
    } else {
      for (size_t i = 0; i < params.size(); ++i) cpu_step(params[i], grads[i], state, i, h, step);
    }
  }
  Outs out = params;
  for (auto& s : state) out.insert(out.end(), s.begin(), s.end());
  return out;
}

void add_optimizers(std::vector<OpCase>& cases) {
  for (DType t : {DType::f32, DType::f64, DType::bf16}) {
    cases.push_back({str_cat("sgd_nesterov_", dtype_name(t)), t, [](Device d, DType t) {
                       cpu::SgdHyper h{
                           .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true};
                       auto with_first = [](cpu::SgdHyper h, int step) {
                         h.first = step == 0;
                         return h;
                       };
                       return optimizer_steps(
                           d, t, 1, h,
                           [&](const Tensor& p, const Tensor& g, auto& st, size_t i, const auto& h,
                               int step) { cpu::sgd_step(p, g, st[0][i], with_first(h, step)); },
                           [&](auto& p, auto& g, auto& st, const auto& h, int step) {
                             cuda::sgd_step(p, g, st[0], with_first(h, step));
                           });
                     }});
    for (bool adamw : {false, true}) {
      cases.push_back(
          {str_cat(adamw ? "adamw_amsgrad_" : "adam_", dtype_name(t)), t,
           [adamw](Device d, DType t) {
             // lr 0.1: three steps move p by ~0.3, well above bf16's 0.02 (1 + |p|).
             cpu::AdamHyper h{.lr = 1e-1,
                              .beta1 = 0.9,
                              .beta2 = 0.999,
                              .eps = 1e-8,
                              .weight_decay = 0.05,
                              .decoupled = adamw,
                              .amsgrad = adamw};
             auto at = [](cpu::AdamHyper h, int step) {
               h.bias1 = 1 - std::pow(h.beta1, step + 1);
               h.bias2_sqrt = std::sqrt(1 - std::pow(h.beta2, step + 1));
               return h;
             };
             return optimizer_steps(
                 d, t, 3, h,
                 [&](const Tensor& p, const Tensor& g, auto& st, size_t i, const auto& h,
                     int step) { cpu::adam_step(p, g, st[0][i], st[1][i], st[2][i], at(h, step)); },
                 [&](auto& p, auto& g, auto& st, const auto& h, int step) {
                   cuda::adam_step(p, g, st[0], st[1], st[2], at(h, step));
                 });
           }});
    }
  }
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  add_elementwise(cases);
  add_copies(cases);
  add_reductions(cases);
  add_softmax_loss(cases);
  add_norm_embedding_dropout(cases);
  add_batch_norm(cases);
  add_pool(cases);
  add_linalg(cases);
  add_conv(cases);
  add_optimizers(cases);
  return cases;
}

class CudaVsCpu : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaVsCpu, MatchesCpu) { expect_cuda_matches_cpu(GetParam()); }

// The CPU half of every case runs everywhere, so a broken case shows up on CPU-only CI and a
// failure on the GPU machine is the CUDA kernel's: outputs exist and are finite.
TEST_P(CudaVsCpu, CpuReferenceIsFinite) { expect_cpu_reference_finite(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Ops, CudaVsCpu, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return info.param.name;
                         });

// Runs everywhere: with a GPU a CUDA tensor round-trips; without one, the first allocation
// fails with one clear error that carries cudaGetDeviceCount's (or the build's) reason.
TEST(CudaDevice, GpuWorksOrFailsWithOneClearError) {
  const std::string why = cuda_unavailable_reason();
  if (why.empty()) {
    Tensor x = from_vector<float>({1.5f, -2.0f, 3.25f}, {3}, Device::cuda(0));
    EXPECT_TRUE(x.device().is_cuda());
    EXPECT_EQ(x.to(Device::cpu()).to_vector<float>(), (std::vector<float>{1.5f, -2.0f, 3.25f}));
    EXPECT_GT(cuda_backend().device_count(), 0);
    return;
  }
  EXPECT_EQ(cuda_backend().device_count(), 0);
  std::string msg = testing::message_of([] { empty({2}, DType::f32, Device::cuda(0)); });
  EXPECT_EQ(msg.rfind("[cuda] ", 0), 0u) << msg;
  const bool built = why.rfind("cudaGetDeviceCount", 0) == 0;
  EXPECT_NE(msg.find(built ? "no CUDA device is available (cudaGetDeviceCount" : "without CUDA"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("device: cpu"), std::string::npos) << msg;
}

// Ops whose inputs sit on different devices name the op and both devices.
TEST(CudaDevice, MixedDevicesAreRejected) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  Tensor a = ones({2, 2}), b = ones({2, 2}, DType::f32, Device::cuda(0));
  std::string msg = testing::message_of([&] { add(a, b); });
  EXPECT_NE(msg.find("[add] tensors are on different devices"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  msg = testing::message_of([&] { matmul(a, b); });
  EXPECT_NE(msg.find("[matmul] tensors are on different devices"), std::string::npos) << msg;
}

// cuBLASLt algorithms are chosen once per GEMM shape and layout and then reused: GEMMs that
// differ only in transposition, batch broadcast or alignment must not share a plan. Runs the
// sequence twice (the second pass is all cache hits) and compares every result with the CPU.
TEST(CudaDevice, GemmPlansAreReusedOnlyForTheSameLayout) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  auto products = [](Device d) {
    Tensor a = cuda_case::input(d, DType::f32, {3, 5, 7}, 1, -2, 2, false);
    Tensor b = cuda_case::input(d, DType::f32, {3, 7, 4}, 2, -2, 2, false);
    Tensor b1 = cuda_case::input(d, DType::f32, {1, 7, 4}, 3, -2, 2, false);
    Tensor wide = cuda_case::input(d, DType::f32, {3, 5, 9}, 4, -2, 2, false);
    return std::vector<Tensor>{matmul(a, b),
                               matmul(b.transpose(1, 2), a.transpose(1, 2)),
                               matmul(a, b1.expand({3, 7, 4})),
                               matmul(a.slice(2, 0, 6), b.slice(1, 1, 7)),
                               matmul(wide.slice(2, 1, 8), b),
                               matmul(a, b)};
  };
  const std::vector<Tensor> want = products(Device::cpu());
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<Tensor> got = products(Device::cuda(0));
    for (size_t i = 0; i < want.size(); ++i) {
      cuda_case::expect_close(str_cat("pass ", pass, " product ", i), got[i], want[i],
                              cuda_case::tolerance(DType::f32));
    }
  }
}

// cuDNN algorithms are chosen once per pass, dtype and geometry, then reused: convolutions that
// differ only in stride, padding or dtype must not share a plan. Two passes, compared with the
// CPU each time.
TEST(CudaDevice, ConvPlansAreReusedOnlyForTheSameGeometry) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  auto run = [](Device d, DType t) {
    Tensor x = cuda_case::input(d, t, {2, 3, 9, 9}, 5), w = cuda_case::input(d, t, {4, 3, 3, 3}, 6);
    Outs out;
    for (const Conv2dParams& p : {Conv2dParams{}, Conv2dParams{.stride = {2, 2}},
                                  Conv2dParams{.padding = {1, 1}}, Conv2dParams{}}) {
      x.zero_grad();
      w.zero_grad();
      for (const Tensor& r : cuda_case::with_grads(conv2d(x, w, {}, p), {x, w})) out.push_back(r);
    }
    return out;
  };
  for (DType t : {DType::f32, DType::bf16}) {
    const Outs want = run(Device::cpu(), t);
    for (int pass = 0; pass < 2; ++pass) {
      const Outs got = run(Device::cuda(0), t);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        cuda_case::expect_close(str_cat(dtype_name(t), " pass ", pass, " output ", i), got[i],
                                want[i], 8 * cuda_case::tolerance(t));
      }
    }
  }
}

// logsumexp over an empty dimension is -inf, as on the CPU (and in PyTorch), not left unset.
TEST(CudaDevice, LogsumexpOverNothingIsMinusInfinity) {
  auto expect_minus_inf = [](Device d) {
    Tensor y = logsumexp(zeros({3, 0}, DType::f32, d), 1).to(Device::cpu());
    EXPECT_EQ(y.shape(), (Shape{3})) << d;
    for (double v : y.to_vector<double>()) EXPECT_EQ(v, -INFINITY) << d;
  };
  expect_minus_inf(Device::cpu());
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  expect_minus_inf(Device::cuda(0));
}

// Index and target checks run on the GPU data and name the bad value and its position.
TEST(CudaDevice, BadIndicesNameValueAndPosition) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "needs a CUDA GPU (" << why << ")";
  Tensor w = ones({20, 4}, DType::f32, Device::cuda(0));
  Tensor idx = from_vector<int64_t>({3, 0, 7, 25, 1}, {5}, Device::cuda(0));
  std::string msg = testing::message_of([&] { embedding(w, idx); });
  EXPECT_EQ(msg.rfind("[embedding] index 25 (position 3 of i64[5] cuda:0) is out of range", 0), 0u)
      << msg;
  Tensor logits = ones({2, 3}, DType::f32, Device::cuda(0));
  Tensor target = from_vector<int64_t>({1, 3}, {2}, Device::cuda(0));
  msg = testing::message_of([&] { cross_entropy(logits, target); });
  EXPECT_EQ(msg.rfind("[cross_entropy] target value 3 at flat index 1 is out of range", 0), 0u)
      << msg;
}

}  // namespace
}  // namespace strata
