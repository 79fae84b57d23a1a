// Shape and indexing ops: concat, stack, split, gather, scatter, index_select, index_add, pad
// and nearest upsampling. Index tensors are i64; out-of-range indices are an Error naming
// the bad value. Backward formulas are differentiable ops (concat <-> slice, gather <->
// scatter-add, index_select <-> index_add, pad <-> slice), so double backward works.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace strata {

/// Joins tensors of equal shape except along dim.
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
/// Joins equal-shaped tensors along a new dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
/// Splits into chunks of `size` along dim (the last may be smaller): views.
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim);
/// out[i][j] = x[index[i][j]][j] for dim 0, etc. (torch.gather); out has index's shape.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// A copy of x with src scattered (added when `accumulate`) at index along dim (torch.scatter
/// / scatter_add). Only the index-shaped leading block of src is used, as in torch.
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src,
               bool accumulate = false);
/// Rows of x along dim picked by the 1-D i64 index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// A copy of x with row l of src added to row index[l] along dim (torch.index_add).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
/// Constant padding; pads lists (before, after) pairs from the last dim backwards, as
/// torch.nn.functional.pad. Negative pads crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);
/// Nearest-neighbour upsampling of (N, C, H, W) by integer factors -> (N, C, H*sh, W*sw).
Tensor upsample_nearest2d(const Tensor& x, int64_t scale_h, int64_t scale_w);

/// Throws "[op] ..." unless `index` is i64 with every value in [0, bound); returns it
/// contiguous. `what` names the bound in the message (e.g. "dimension 1 of size 4").
Tensor check_index_range(const char* op, const Tensor& index, int64_t bound,
                         const std::string& what);

}  // namespace strata
