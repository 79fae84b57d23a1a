#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and trains LeNet-5 on
# Fashion-MNIST (10 epochs on the CPU). Extra arguments are passed to `strata train`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
[ -f build/build.ninja ] || tools/build.sh
cmake --build build -j"$(nproc)" --target strata
# --resume auto: a second run continues (or, once finished, reports) the first instead of
# refusing to overwrite its checkpoints.
exec build/launch/strata train --config configs/lenet5_fashion_mnist.json --resume auto "$@"
