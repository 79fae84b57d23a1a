// OpenBLAS calls. Transposed operands are passed as CblasTrans with their leading dimension,
// so transposes in backward never copy. Batched products that split well run one GEMM per
// thread (OpenBLAS's OpenMP build stays single-threaded inside a parallel region).
#include "core/backend/cpu/linalg.h"

#include <cblas.h>
#include <omp.h>

#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

struct Operand {
  Tensor t;  // (batch, rows, cols) with a usable layout
  CBLAS_TRANSPOSE trans;
  int64_t ld;
  int64_t batch_stride;
};

Operand as_operand(const Tensor& x) {
  const Shape& st = x.strides();
  int64_t rows = x.shape()[1], cols = x.shape()[2];
  if ((st[2] == 1 || cols == 1) && st[1] >= std::max<int64_t>(cols, 1)) {
    return {x, CblasNoTrans, st[1], st[0]};
  }
  if ((st[1] == 1 || rows == 1) && st[2] >= std::max<int64_t>(rows, 1)) {
    return {x, CblasTrans, st[2], st[0]};
  }
  Tensor c = x.contiguous();
  return {c, CblasNoTrans, std::max<int64_t>(cols, 1), rows * cols};
}

template <class T>
void gemm_one(const Operand& a, const Operand& b, T* out, int64_t m, int64_t n, int64_t k, T alpha,
              T beta, int64_t i) {
  const T* ap = static_cast<const T*>(a.t.raw_data()) + i * a.batch_stride;
  const T* bp = static_cast<const T*>(b.t.raw_data()) + i * b.batch_stride;
  T* op = out + i * m * n;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, a.trans, b.trans, m, n, k, alpha, ap, a.ld, bp, b.ld, beta, op,
                std::max<int64_t>(n, 1));
  } else {
    cblas_dgemm(CblasRowMajor, a.trans, b.trans, m, n, k, alpha, ap, a.ld, bp, b.ld, beta, op,
                std::max<int64_t>(n, 1));
  }
}

/// Multiply-adds below which a whole batched product stays on one thread: forking costs a
/// few microseconds, as much as about 2^18 multiply-adds.
constexpr int64_t kParallelMacs = int64_t{1} << 18;

/// Whether a batch of GEMMs of `macs` multiply-adds each should be split over OpenMP threads
/// (each GEMM then single-threaded) rather than run in turn with OpenBLAS threading each one.
/// Splitting wins for small GEMMs, where OpenBLAS's own threading barely pays, and for
/// batches that split evenly enough, such as attention's (batch x heads) products.
bool batch_parallel(int64_t batch, int64_t macs) {
  const int64_t threads = omp_get_max_threads();
  if (batch < 2 || threads < 2 || batch * macs < kParallelMacs) return false;
  const bool small = macs < 64 * 64 * 64;
  return small || batch % threads == 0 || batch >= 4 * threads;
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta) {
  int64_t batch = a.shape()[0], m = a.shape()[1], k = a.shape()[2], n = b.shape()[2];
  if (m == 0 || n == 0) return;
  Operand oa = as_operand(a), ob = as_operand(b);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* op = static_cast<T*>(out.raw_data());
    if (k == 0) {
      for (int64_t i = 0; i < batch * m * n; ++i) op[i] = beta == 0 ? T(0) : T(beta) * op[i];
      return;
    }
    if (batch_parallel(batch, m * n * k)) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) gemm_one<T>(oa, ob, op, m, n, k, T(alpha), T(beta), i);
    } else {
      for (int64_t i = 0; i < batch; ++i) gemm_one<T>(oa, ob, op, m, n, k, T(alpha), T(beta), i);
    }
  };
  if (a.dtype() == DType::f64) {
    run(double{});
  } else {
    check_internal(a.dtype() == DType::f32, "gemm on ", a.desc());
    run(float{});
  }
}

}  // namespace strata::cpu
