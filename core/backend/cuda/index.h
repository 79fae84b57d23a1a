// CUDA indexing kernels (range check, gather, scatter, index_select, index_add, nearest
// upsampling), contract of cpu/index.h.
// index_add adds repeated indices in index order, as the CPU does: deterministic, no atomics.
#pragma once

#include "core/tensor.h"

namespace strata::cuda {

/// Row-major position of the first element of `index` (i64, contiguous) outside [0, n), or -1.
int64_t first_out_of_range(const Tensor& index, int64_t n);
/// out[.., i, ..] = x[.., index[.., i, ..], ..] along dim; out is contiguous, index-shaped.
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
/// out[.., index[.., i, ..], ..] = (or +=) src[.., i, ..] along dim, in index order (one
/// thread walks dim for each other position, so results equal the CPU's).
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
             bool accumulate);
/// out (N, C, H*sh, W*sw) = x (N, C, H, W) repeated sh x sw times; both contiguous.
void upsample_nearest2d(const Tensor& x, const Tensor& out, int64_t sh, int64_t sw);
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
               int64_t skip);

}  // namespace strata::cuda
