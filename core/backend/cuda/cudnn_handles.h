// cuDNN's check macro and move-only owners of its handle and descriptors (the legacy
// convolution API of conv.cu). Destructors never throw.
#pragma once

#include <cudnn.h>

#include "core/backend/cuda/handles.h"

#define STRATA_CUDNN_CHECK(call)                                                                  \
  do {                                                                                            \
    cudnnStatus_t strata_st_ = (call);                                                            \
    if (strata_st_ != CUDNN_STATUS_SUCCESS) {                                                     \
      throw ::strata::Error(::strata::str_cat("[cudnn] ", #call,                                  \
                                              " failed: ", cudnnGetErrorString(strata_st_), " (", \
                                              static_cast<int>(strata_st_), ")"));                \
    }                                                                                             \
  } while (0)

namespace strata::cuda {

/// A cuDNN descriptor made by Create and released by Destroy.
template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() {
    D d{};
    STRATA_CUDNN_CHECK(Create(&d));
    d_ = Owner<D, Destroy>(d);
  }
  D get() const { return d_.get(); }

 private:
  Owner<D, Destroy> d_;
};

using CudnnHandle =
    CudnnDescriptor<cudnnHandle_t, cudnnCreate, cudnnDestroy>;  // one per device (the backend's)
using TensorDescriptor = CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                                         cudnnDestroyTensorDescriptor>;
using FilterDescriptor = CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                                         cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                    cudnnDestroyConvolutionDescriptor>;

}  // namespace strata::cuda
