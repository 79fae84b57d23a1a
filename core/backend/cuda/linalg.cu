// GEMM through cuBLASLt. strata is row-major and cuBLASLt column-major, so out = a @ b is
// computed as out^T = b^T a^T: a row-major (r, c) matrix read column-major is its transpose,
// and a transposed view is a plain column-major matrix. Descriptors are RAII owners.
#include <algorithm>

#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/handles.h"
#include "core/backend/cuda/linalg.h"
#include "core/backend/cuda/loops.cuh"

namespace strata::cuda {
namespace {

/// One operand (batch, r, c) as cuBLASLt sees it: the stored column-major matrix and the op
/// that turns it into the (c, r) transpose the column-major product needs.
struct Operand {
  Tensor t;  // keeps a contiguous copy alive when one was needed
  cublasOperation_t op = CUBLAS_OP_N;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0, batch_stride = 0;
};

Operand describe(const Tensor& in) {
  Tensor t = in;
  const int64_t batch = t.shape()[0], r = t.shape()[1], c = t.shape()[2];
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int64_t s0 = t.strides()[0], s1 = t.strides()[1], s2 = t.strides()[2];
    const bool batch_ok = batch == 1 || s0 != 0;
    const int64_t ld_row = r == 1 ? std::max<int64_t>(c, 1) : s1;
    const int64_t ld_col = c == 1 ? std::max<int64_t>(r, 1) : s2;
    if (batch_ok && (s2 == 1 || c == 1) && ld_row >= std::max<int64_t>(c, 1)) {
      return {t, CUBLAS_OP_N, uint64_t(c), uint64_t(r), ld_row, batch == 1 ? 0 : s0};
    }
    if (batch_ok && (s1 == 1 || r == 1) && ld_col >= std::max<int64_t>(r, 1)) {
      return {t, CUBLAS_OP_T, uint64_t(r), uint64_t(c), ld_col, batch == 1 ? 0 : s0};
    }
    t = t.contiguous();  // neither layout: one copy, then the first case holds
  }
  check_internal(false, "gemm operand layout ", in.desc());
  return {};
}

MatrixLayout layout(cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch,
                    int64_t batch_stride) {
  cublasLtMatrixLayout_t l = nullptr;
  STRATA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld));
  MatrixLayout owned(l);
  const int32_t count = static_cast<int32_t>(batch);
  STRATA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                       &count, sizeof(count)));
  STRATA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
      l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride, sizeof(batch_stride)));
  return owned;
}

/// The largest power of two (up to 256) dividing the address: cuBLASLt assumes 256 unless told.
uint32_t alignment_of(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

MatmulPreference preference(size_t workspace, const void* a, const void* b, const void* c) {
  cublasLtMatmulPreference_t p = nullptr;
  STRATA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p));
  MatmulPreference owned(p);
  uint64_t ws = workspace;
  STRATA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  const uint32_t al[4] = {alignment_of(a), alignment_of(b), alignment_of(c), alignment_of(c)};
  const cublasLtMatmulPreferenceAttributes_t keys[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    STRATA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p, keys[i], &al[i], sizeof(al[i])));
  }
  return owned;
}

/// cuBLASLt's element type of a GEMM operand; bf16/f16 accumulate in f32 on tensor cores.
cudaDataType_t data_type(DType t) {
  switch (t) {
    case DType::f64:
      return CUDA_R_64F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

template <class T>
struct Scale {
  T beta;
  __device__ T operator()(T v) const { return beta * v; }
};

/// The GEMM's descriptor: compute and scale types, transpositions and, when `bias` is defined,
/// the bias epilogue. Column-major D is (n, m): the epilogue adds a vector along D's n rows,
/// which are out's columns.
MatmulDesc matmul_desc(cublasComputeType_t compute, bool f64, cublasOperation_t op_a,
                       cublasOperation_t op_b, const Tensor& bias, cudaDataType_t type) {
  cublasLtMatmulDesc_t d = nullptr;
  STRATA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, compute, f64 ? CUDA_R_64F : CUDA_R_32F));
  MatmulDesc desc(d);
  STRATA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  STRATA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  if (bias.defined()) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const void* ptr = bias.raw_data();
    STRATA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                       sizeof(epilogue)));
    STRATA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ptr, sizeof(ptr)));
    STRATA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                       &type, sizeof(type)));
  }
  return desc;
}

/// The layouts of one GEMM: cuBLASLt's A and B (strata's b and a) and the output.
struct Layouts {
  MatrixLayout a, b, c;
};

/// The device's algorithm for this GEMM: from its plans, or from the heuristic the first time
/// a shape is seen. found == false only for an epilogue cuBLASLt has no algorithm for; any
/// other heuristic failure is an error.
GemmPlan choose_algo(const BlasLt& blas, const GemmKey& key, cublasLtMatmulDesc_t desc,
                     const Layouts& l, const void* a, const void* b, const void* c, bool epilogue) {
  if (auto plan = blas.plans->find(key)) return *plan;
  MatmulPreference pref = preference(blas.workspace_bytes, a, b, c);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(blas.handle, desc, l.a.get(), l.b.get(), l.c.get(), l.c.get(),
                                     pref.get(), 1, &result, &found);
  if (!epilogue) STRATA_CUBLAS_CHECK(status);
  GemmPlan plan{status == CUBLAS_STATUS_SUCCESS && found > 0, result.algo};
  blas.plans->insert(key, plan);
  return plan;
}

/// What a GEMM's algorithm choice depends on: types, epilogue, both operands' layouts and
/// alignments, the output's shape (n, m, batch) and alignment, the workspace, and the bias
/// epilogue by its pointer's alignment (0: none), which the heuristic reads from the pointer.
GemmKey plan_key(cudaDataType_t type, cublasComputeType_t compute, uint32_t bias_alignment,
                 const Operand& A, const Operand& B, std::array<int64_t, 3> nmb, const void* out,
                 size_t workspace) {
  return {int64_t(type),
          int64_t(compute),
          int64_t(bias_alignment),
          int64_t(A.op),
          int64_t(B.op),
          int64_t(A.rows),
          int64_t(A.cols),
          A.ld,
          A.batch_stride,
          int64_t(B.rows),
          int64_t(B.cols),
          B.ld,
          B.batch_stride,
          nmb[0],
          nmb[1],
          nmb[2],
          alignment_of(A.t.raw_data()),
          alignment_of(B.t.raw_data()),
          alignment_of(out),
          int64_t(workspace)};
}

/// The cuBLASLt call of gemm and gemm_bias for k > 0: out = alpha a @ b + beta out, plus
/// `bias` (n) on every row through the bias epilogue when defined. False only when a bias
/// was asked for and cuBLASLt has no algorithm with that epilogue.
bool lt_matmul(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta,
               bool allow_tf32, const Tensor& bias) {
  const int64_t batch = a.shape()[0], m = a.shape()[1], n = b.shape()[2];
  const bool f64 = a.dtype() == DType::f64;
  check(batch <= INT32_MAX, "[matmul] batch of ", batch, " exceeds cuBLASLt's limit");
  Operand A = describe(b), B = describe(a);  // out^T = b^T a^T
  const cudaDataType_t type = data_type(a.dtype());
  const bool tf32 = allow_tf32 && a.dtype() == DType::f32;
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  MatmulDesc desc = matmul_desc(compute, f64, A.op, B.op, bias, type);
  Layouts l{layout(type, A.rows, A.cols, A.ld, batch, A.batch_stride),
            layout(type, B.rows, B.cols, B.ld, batch, B.batch_stride),
            layout(type, uint64_t(n), uint64_t(m), n, batch, m * n)};
  BlasLt blas = blaslt_for(out.device());
  cudaStream_t stream = stream_for(out.device());
  const uint32_t bias_alignment = bias.defined() ? alignment_of(bias.raw_data()) : 0;
  const GemmKey key = plan_key(type, compute, bias_alignment, A, B, {n, m, batch}, out.raw_data(),
                               blas.workspace_bytes);
  const GemmPlan plan = choose_algo(blas, key, desc.get(), l, A.t.raw_data(), B.t.raw_data(),
                                    out.raw_data(), bias.defined());
  if (!plan.found) {
    check(bias.defined(), "[matmul] cuBLASLt has no algorithm for ", a.desc(), " @ ", b.desc(),
          "; try contiguous operands");
    return false;
  }
  const float alpha32 = float(alpha), beta32 = float(beta);
  const void* pa = f64 ? static_cast<const void*>(&alpha) : &alpha32;
  const void* pb = f64 ? static_cast<const void*>(&beta) : &beta32;
  STRATA_CUBLAS_CHECK(cublasLtMatmul(blas.handle, desc.get(), pa, A.t.raw_data(), l.a.get(),
                                     B.t.raw_data(), l.b.get(), pb, out.raw_data(), l.c.get(),
                                     out.raw_data(), l.c.get(), &plan.algo, blas.workspace,
                                     blas.workspace_bytes, stream));
  return true;
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta,
          bool allow_tf32) {
  const int64_t batch = a.shape()[0], m = a.shape()[1], k = a.shape()[2], n = b.shape()[2];
  check_internal(is_floating(a.dtype()), "CUDA gemm called on ", a.desc());
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: out = beta * out
    if (beta == 0) return fill(out, 0.0);
    if (beta == 1) return;
    visit_floating(out, "gemm_scale", [&](auto tag) {
      using T = decltype(tag);
      map<T>("gemm_scale", out, Scale<T>{T(beta)}, arg<T>(out));
    });
    return;
  }
  lt_matmul(a, b, out, alpha, beta, allow_tf32, Tensor());
}

bool gemm_bias(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out,
               bool allow_tf32) {
  const int64_t batch = a.shape()[0], m = a.shape()[1], k = a.shape()[2], n = b.shape()[2];
  // The epilogue's cases: one f32/bf16/f16 matrix with a contiguous, aligned bias of n.
  if (batch != 1 || m == 0 || n == 0 || k == 0 || a.dtype() == DType::f64 ||
      bias.dtype() != out.dtype() || bias.numel() != n || !bias.is_contiguous() ||
      alignment_of(bias.raw_data()) < 16) {
    return false;
  }
  return lt_matmul(a, b, out, 1.0, 0.0, allow_tf32, bias);
}

}  // namespace strata::cuda
