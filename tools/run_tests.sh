#!/usr/bin/env bash
# The test command of the README: builds if needed, then runs every CTest test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || tools/build.sh
cmake --build build -j"$(nproc)"
ctest --test-dir build -j"$(nproc)" --output-on-failure --timeout 600 "$@"
