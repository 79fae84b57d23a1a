#!/usr/bin/env bash
# Configures and builds strata into build/ (Release). Extra arguments go to cmake configure,
# e.g. tools/build.sh -DSTRATA_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  args+=("-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc")
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" "$@"
cmake --build build -j"$(nproc)"
