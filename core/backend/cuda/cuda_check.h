// The check macros every CUDA runtime and cuBLAS(Lt) call goes through: each names the call
// and the library's own error string.
#pragma once

#include <cublasLt.h>
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

/// After a kernel launch: names the kernel and the launch error (bad configuration, no device).
#define STRATA_CUDA_CHECK_LAUNCH(kernel_name)                                                     \
  do {                                                                                            \
    cudaError_t strata_err_ = cudaGetLastError();                                                 \
    if (strata_err_ != cudaSuccess) {                                                             \
      throw ::strata::Error(::strata::str_cat("[cuda] launch of kernel ", kernel_name,            \
                                              " failed: ", cudaGetErrorString(strata_err_), " (", \
                                              static_cast<int>(strata_err_), ")"));               \
    }                                                                                             \
  } while (0)

/// cuBLAS and cuBLASLt share cublasStatus_t; cuBLASLt's own string function keeps libcublas
/// unlinked.
#define STRATA_CUBLAS_CHECK(call)                                                               \
  do {                                                                                          \
    cublasStatus_t strata_st_ = (call);                                                         \
    if (strata_st_ != CUBLAS_STATUS_SUCCESS) {                                                  \
      throw ::strata::Error(::strata::str_cat("[cublas] ", #call,                               \
                                              " failed: ", cublasLtGetStatusString(strata_st_), \
                                              " (", static_cast<int>(strata_st_), ")"));        \
    }                                                                                           \
  } while (0)
