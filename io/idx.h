// The IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed).
#pragma once

#include <string>

#include "core/tensor.h"

namespace strata::io {

/// Reads an IDX file of unsigned bytes into a u8 tensor of its stored dimensions. Errors
/// name the file and what is wrong (missing, truncated, bad magic number).
Tensor read_idx(const std::string& path);

}  // namespace strata::io
