// CPU GEMM on OpenBLAS, for matmul, linear and the convolutions.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// out[b] = alpha * a[b] @ b[b] + beta * out[b] for b in [0, batch). a: (batch, m, k),
/// b: (batch, k, n), out: (batch, m, n) contiguous. a and b may be transposed views.
void gemm(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta);

}  // namespace strata::cpu
