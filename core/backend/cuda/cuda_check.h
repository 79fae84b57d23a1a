// The check macro every CUDA runtime call goes through: it names the call and CUDA's own
// error string.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define STRATA_CUDA_CHECK(call)                                                                   \
  do {                                                                                            \
    cudaError_t strata_err_ = (call);                                                             \
    if (strata_err_ != cudaSuccess) {                                                             \
      throw ::strata::Error(::strata::str_cat("[cuda] ", #call,                                   \
                                              " failed: ", cudaGetErrorString(strata_err_), " (", \
                                              static_cast<int>(strata_err_), ")"));               \
    }                                                                                             \
  } while (0)
