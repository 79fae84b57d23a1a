# Finds the third-party libraries. Each is required; a missing one stops configure with the
# Debian package that provides it.
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)

# OpenBLAS: prefer the OpenMP build so GEMM and our OpenMP loops share one thread pool
# (two pools on two cores halve the speed; see README "Threads").
find_library(STRATA_OPENBLAS_LIB NAMES openblas
  PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-openmp
  NO_DEFAULT_PATH)
if(NOT STRATA_OPENBLAS_LIB)
  find_library(STRATA_OPENBLAS_LIB NAMES openblas)
endif()
find_path(STRATA_CBLAS_INCLUDE NAMES cblas.h PATH_SUFFIXES openblas openblas-openmp openblas-pthread)
if(NOT STRATA_OPENBLAS_LIB OR NOT STRATA_CBLAS_INCLUDE)
  message(FATAL_ERROR "OpenBLAS not found: apt-get install libopenblas-openmp-dev")
endif()
get_filename_component(STRATA_OPENBLAS_DIR ${STRATA_OPENBLAS_LIB} DIRECTORY)
add_library(strata_blas INTERFACE)
target_link_libraries(strata_blas INTERFACE ${STRATA_OPENBLAS_LIB})
target_include_directories(strata_blas INTERFACE ${STRATA_CBLAS_INCLUDE})
# The loader would otherwise resolve libopenblas.so.0 through Debian's alternative (pthreads).
set(CMAKE_BUILD_RPATH ${STRATA_OPENBLAS_DIR})
set(CMAKE_INSTALL_RPATH ${STRATA_OPENBLAS_DIR})

set(HDF5_PREFER_PARALLEL OFF)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)

if(STRATA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
