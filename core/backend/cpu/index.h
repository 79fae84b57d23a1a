// CPU kernels for indexing ops: gather, scatter, index_select, index_add and nearest
// upsampling. Index tensors are i64 and already range-checked by the op layer.
#pragma once

#include "core/tensor.h"

namespace strata::cpu {

/// Row-major position of the first element of `index` (i64) outside [0, n), or -1.
int64_t first_out_of_range(const Tensor& index, int64_t n);
/// out[.., i, ..] = x[.., index[.., i, ..], ..] along dim; out is contiguous, index-shaped.
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
/// out[.., index[.., i, ..], ..] = (or +=) src[.., i, ..] along dim, in index order, so
/// repeated indices resolve as on a single thread. out is contiguous.
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
             bool accumulate);
/// out = x rows along dim picked by the 1-D index; out is contiguous.
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
/// out rows along dim at index[l] += src row l, skipping rows whose index equals `skip`
/// (-1 skips none). out and src are contiguous. Threads split columns, never rows, so
/// repeated indices never race and sums are deterministic.
void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
               int64_t skip);
/// out (N, C, H*sh, W*sw) = x (N, C, H, W) repeated sh x sw times; both contiguous.
void upsample_nearest2d(const Tensor& x, const Tensor& out, int64_t sh, int64_t sw);

}  // namespace strata::cpu
