// Pooling ops: checks, kernels and backward. Each backward is itself a recorded op whose
// gradient is the forward again (scatter <-> gather for max, average <-> its adjoint), so
// double backward works through pooling as well.
#include "core/ops/pool.h"

#include "core/autograd/node.h"
#include "core/backend/cpu/pool.h"
#include "core/backend/cuda/pool.h"
#include "core/ops/dispatch.h"

namespace strata {
namespace {

using Hw = std::array<int64_t, 2>;

std::string pair_str(const Hw& v) { return str_cat("(", v[0], ", ", v[1], ")"); }

cpu::PoolGeometry geometry(const Shape& x, const Hw& out, const Hw& kernel, const Hw& stride,
                           const Hw& padding, bool adaptive) {
  cpu::PoolGeometry g;
  g.planes = x[0] * x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_h = out[0];
  g.out_w = out[1];
  g.kernel_h = kernel[0];
  g.kernel_w = kernel[1];
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.adaptive = adaptive;
  return g;
}

Shape in_shape(const Shape& like, const cpu::PoolGeometry& g) {
  return {like[0], like[1], g.in_h, g.in_w};
}
Shape out_shape(const Shape& like, const cpu::PoolGeometry& g) {
  return {like[0], like[1], g.out_h, g.out_w};
}

/// Runs kernel(src, out) on a contiguous copy of `in`, computing bf16/f16 in f32.
template <class Kernel>
Tensor compute(const Tensor& in, const Shape& shape, Kernel&& kernel) {
  Tensor src = in.detach().contiguous();
  if (storage_only(in.dtype())) src = src.to(DType::f32);
  Tensor out = empty(shape, src.dtype(), src.device());
  kernel(src, out);
  return storage_only(in.dtype()) ? out.to(in.dtype()) : out;
}

// ---- max: the forward saves argmax indices; scatter and gather are each other's adjoint ----

Tensor max_gather(const Tensor& x, const Tensor& idx, const cpu::PoolGeometry& g);

Tensor max_scatter(const Tensor& gy, const Tensor& idx, const cpu::PoolGeometry& g) {
  Tensor gx = compute(gy, in_shape(gy.shape(), g), [&](const Tensor& src, const Tensor& out) {
    on_cuda(src) ? cuda::max_pool2d_scatter(src, idx, out, g)
                 : cpu::max_pool2d_scatter(src, idx, out, g);
  });
  return record("max_pool2d_backward", gx, {gy},
                [idx, g](const Tensor& gg) { return std::vector<Tensor>{max_gather(gg, idx, g)}; });
}

Tensor max_gather(const Tensor& x, const Tensor& idx, const cpu::PoolGeometry& g) {
  Tensor y = compute(x, out_shape(x.shape(), g), [&](const Tensor& src, const Tensor& out) {
    on_cuda(src) ? cuda::max_pool2d_gather(src, idx, out, g)
                 : cpu::max_pool2d_gather(src, idx, out, g);
  });
  return record("max_pool2d_gather", y, {x}, [idx, g](const Tensor& gg) {
    return std::vector<Tensor>{max_scatter(gg, idx, g)};
  });
}

// ---- average (fixed or adaptive windows): forward and its adjoint ----

Tensor avg_backward(const Tensor& gy, const cpu::PoolGeometry& g);

Tensor avg_forward(const Tensor& x, const cpu::PoolGeometry& g) {
  Tensor y = compute(x, out_shape(x.shape(), g), [&](const Tensor& src, const Tensor& out) {
    on_cuda(src) ? cuda::avg_pool2d(src, out, g) : cpu::avg_pool2d(src, out, g);
  });
  const char* name = g.adaptive ? "adaptive_avg_pool2d" : "avg_pool2d";
  return record(name, y, {x},
                [g](const Tensor& gg) { return std::vector<Tensor>{avg_backward(gg, g)}; });
}

Tensor avg_backward(const Tensor& gy, const cpu::PoolGeometry& g) {
  Tensor gx = compute(gy, in_shape(gy.shape(), g), [&](const Tensor& src, const Tensor& out) {
    on_cuda(src) ? cuda::avg_pool2d_backward(src, out, g) : cpu::avg_pool2d_backward(src, out, g);
  });
  const char* name = g.adaptive ? "adaptive_avg_pool2d_backward" : "avg_pool2d_backward";
  return record(name, gx, {gy},
                [g](const Tensor& gg) { return std::vector<Tensor>{avg_forward(gg, g)}; });
}

// ---- checks ----

void check_input(const char* op, const Tensor& x) {
  check_dim(op, x, 4, "input (N, C, H, W)");
  check_floating(op, x);
}

/// Checks the window parameters and returns the output size (torch's floor rule).
Hw window_output(const char* op, const Tensor& x, const Hw& kernel, const Hw& stride,
                 const Hw& padding) {
  Hw out{0, 0};
  for (int i = 0; i < 2; ++i) {
    check(kernel[i] >= 1 && stride[i] >= 1 && padding[i] >= 0, "[", op, "] kernel ",
          pair_str(kernel), " and stride ", pair_str(stride), " must be >= 1 and padding ",
          pair_str(padding), " >= 0");
    check(2 * padding[i] <= kernel[i], "[", op, "] padding ", pair_str(padding),
          " should be at most half of kernel ", pair_str(kernel));
    int64_t padded = x.size(2 + i) + 2 * padding[i];
    check(kernel[i] <= padded, "[", op, "] kernel ", pair_str(kernel),
          " is larger than the padded input ", x.desc(), " with padding ", pair_str(padding),
          "; use a smaller kernel or more padding");
    out[i] = (padded - kernel[i]) / stride[i] + 1;
  }
  return out;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding) {
  check_input("max_pool2d", x);
  Hw out = window_output("max_pool2d", x, kernel, stride, padding);
  cpu::PoolGeometry g = geometry(x.shape(), out, kernel, stride, padding, false);
  Tensor idx = empty(out_shape(x.shape(), g), DType::i64, x.device());
  Tensor y = compute(x, out_shape(x.shape(), g), [&](const Tensor& src, const Tensor& dst) {
    on_cuda(src) ? cuda::max_pool2d(src, dst, idx, g) : cpu::max_pool2d(src, dst, idx, g);
  });
  return record("max_pool2d", y, {x}, [idx, g](const Tensor& gy) {
    return std::vector<Tensor>{max_scatter(gy, idx, g)};
  });
}

Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding) {
  check_input("avg_pool2d", x);
  Hw out = window_output("avg_pool2d", x, kernel, stride, padding);
  return avg_forward(x, geometry(x.shape(), out, kernel, stride, padding, false));
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size) {
  check_input("adaptive_avg_pool2d", x);
  check(output_size[0] >= 1 && output_size[1] >= 1, "[adaptive_avg_pool2d] output_size ",
        pair_str(output_size), " must be >= 1");
  check(x.size(2) >= 1 && x.size(3) >= 1, "[adaptive_avg_pool2d] input ", x.desc(),
        " has an empty plane");
  return avg_forward(x, geometry(x.shape(), output_size, {1, 1}, {1, 1}, {0, 0}, true));
}

}  // namespace strata
