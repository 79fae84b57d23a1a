// Shapes and strides: small helpers shared by tensors and kernels.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace strata {

using Shape = std::vector<int64_t>;

/// Number of elements of a shape (1 for a scalar).
int64_t numel_of(const Shape& shape);
/// Row-major strides, in elements.
Shape contiguous_strides(const Shape& shape);
/// NumPy broadcasting of two shapes; throws naming `op` and both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
/// Normalises a possibly negative dimension index for a tensor of `ndim` dims.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
std::string shape_str(const Shape& shape);

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << shape_str(s); }

}  // namespace strata
