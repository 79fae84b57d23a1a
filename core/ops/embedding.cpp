// Embedding (a row gather whose backward is a row scatter-add) and inverted dropout (a Philox
// mask shared with the CUDA kernel). Plain backward uses fused kernels; create_graph
// backward uses differentiable ops.
#include "core/ops/embedding.h"

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/backend/cpu/embedding.h"
#include "core/backend/cpu/index.h"
#include "core/backend/cuda/embedding.h"
#include "core/backend/cuda/index.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"

namespace strata {
namespace {

/// d(weight) for embedding's plain backward: one scatter-add pass, padding rows skipped;
/// bf16/f16 accumulate in f32.
Tensor embedding_backward_kernel(const Tensor& g, const Tensor& idx, int64_t rows,
                                 int64_t padding_idx, DType dtype) {
  DType acc = compute_dtype(dtype);
  Tensor grad = zeros({rows, g.shape()[1]}, acc, g.device());
  if (on_cuda(grad)) {
    cuda::index_add(grad, 0, idx, g.to(acc).contiguous(), padding_idx);
  } else {
    cpu::index_add(grad, 0, idx, g.to(acc).contiguous(), padding_idx);
  }
  return grad.to(dtype);
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  check_dim("embedding", weight, 2, "(V, D)");
  check_same_device("embedding", weight, indices);
  const int64_t rows = weight.shape()[0], width = weight.shape()[1];
  check(padding_idx >= -1 && padding_idx < rows, "[embedding] padding_idx ", padding_idx,
        " is outside the vocabulary of ", rows, " rows; use -1 for none");
  Tensor idx =
      check_index_range("embedding", indices, rows,
                        str_cat("a vocabulary of ", rows, " rows (weight ", weight.desc(), ")"))
          .reshape({indices.numel()});
  Tensor out = empty({indices.numel(), width}, weight.dtype(), weight.device());
  if (on_cuda(weight)) {
    cuda::index_select(weight, 0, idx, out);
  } else {
    cpu::index_select(weight, 0, idx, out);
  }
  Shape shape = indices.shape();
  shape.push_back(width);
  out = out.reshape(shape);
  DType dtype = weight.dtype();
  return record("embedding", out, {weight}, [=](const Tensor& g) {
    Tensor g2 = g.reshape({idx.numel(), width});  // (N, D)
    if (!GradMode::enabled()) {
      return std::vector<Tensor>{embedding_backward_kernel(g2, idx, rows, padding_idx, dtype)};
    }
    if (padding_idx >= 0) {
      Tensor keep = ne(idx, scalar_tensor(padding_idx, DType::i64, idx.device()));
      g2 = mul(g2, keep.to(g2.dtype()).unsqueeze(1));
    }
    return std::vector<Tensor>{
        index_add(zeros({rows, width}, g2.dtype(), g2.device()), 0, idx, g2)};
  });
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check(p >= 0 && p <= 1, "[dropout] probability must be in [0, 1], got ", p);
  check_floating("dropout", x);
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, scalar_like(0, x));
  if (storage_only(x.dtype())) return dropout(x.to(DType::f32), p, training, gen).to(x.dtype());
  const double scale = 1.0 / (1.0 - p);
  Tensor xc = x.contiguous();
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  Tensor mask = empty(x.shape(), DType::b8, x.device());
  uint64_t base = gen.reserve_values(x.numel());
  if (on_cuda(x)) {
    cuda::dropout(xc, out, mask, gen.seed(), base, static_cast<float>(1.0 - p), scale);
  } else {
    cpu::dropout(xc, out, mask, gen.seed(), base, static_cast<float>(1.0 - p), scale);
  }
  return record("dropout", out, {x}, [mask, scale](const Tensor& g) {
    if (!GradMode::enabled()) {
      Tensor r = empty(g.shape(), g.dtype(), g.device());
      if (on_cuda(g)) {
        cuda::dropout_backward(g.contiguous(), mask, r, scale);
      } else {
        cpu::dropout_backward(g.contiguous(), mask, r, scale);
      }
      return std::vector<Tensor>{r};
    }
    return std::vector<Tensor>{mul(g, mul(mask.to(g.dtype()), scalar_like(scale, g)))};
  });
}

}  // namespace strata
