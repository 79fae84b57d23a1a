# Resolves STRATA_CUDA and STRATA_SANITIZE into compiler settings shared by every target.
include(CheckLanguage)

string(TOUPPER "${STRATA_CUDA}" _strata_cuda)
if(_strata_cuda STREQUAL "AUTO")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(STRATA_WITH_CUDA ON)
  else()
    set(STRATA_WITH_CUDA OFF)
  endif()
elseif(_strata_cuda STREQUAL "ON")
  set(STRATA_WITH_CUDA ON)
elseif(_strata_cuda STREQUAL "OFF")
  set(STRATA_WITH_CUDA OFF)
else()
  message(FATAL_ERROR "STRATA_CUDA must be AUTO, ON or OFF, not '${STRATA_CUDA}'")
endif()

if(STRATA_WITH_CUDA)
  # `native` fails on machines without a GPU (CI), so Hopper is the default target.
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90a)
  endif()
  enable_language(CUDA)
  # CMake 3.25 does not know that nvcc 13 speaks C++20: tell it the flag.
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
endif()
message(STATUS "strata: CUDA backend ${STRATA_WITH_CUDA}")

add_library(strata_flags INTERFACE)
target_compile_options(strata_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
if(STRATA_WITH_CUDA)
  # cuBLASLt for the GEMMs of backend/cuda/linalg.cu; -lineinfo keeps kernels debuggable
  # under compute-sanitizer at no runtime cost; relaxed constexpr lets kernels use
  # std::numeric_limits.
  target_link_libraries(strata_flags INTERFACE CUDA::cublasLt)
  # cuDNN 9 for the convolutions of backend/cuda/conv.cu: beside the toolkit here
  # (/usr/local/cuda), in the system paths on the GPU machine.
  find_path(STRATA_CUDNN_INCLUDE cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(STRATA_CUDNN_LIB cudnn
    HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 /usr/local/cuda/lib)
  if(NOT STRATA_CUDNN_INCLUDE OR NOT STRATA_CUDNN_LIB)
    message(FATAL_ERROR "cuDNN not found (cudnn.h, libcudnn): install cuDNN 9 or configure "
      "with -DSTRATA_CUDA=OFF")
  endif()
  message(STATUS "strata: cuDNN ${STRATA_CUDNN_LIB}")
  target_include_directories(strata_flags INTERFACE ${STRATA_CUDNN_INCLUDE})
  target_link_libraries(strata_flags INTERFACE ${STRATA_CUDNN_LIB})
  target_compile_options(strata_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo --expt-relaxed-constexpr>)
endif()
if(STRATA_SANITIZE)
  if(NOT STRATA_SANITIZE MATCHES "^(address|undefined|thread)$")
    message(FATAL_ERROR "STRATA_SANITIZE must be address, undefined or thread, not '${STRATA_SANITIZE}'")
  endif()
  target_compile_options(strata_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${STRATA_SANITIZE} -fno-omit-frame-pointer>)
  target_link_options(strata_flags INTERFACE -fsanitize=${STRATA_SANITIZE})
endif()
