#!/usr/bin/env bash
# Pipeline bubbles and activation memory for GPipe, 1F1B and interleaved 1F1B, with 2 and 4
# ranks (one thread each). Usage: bench/pipeline_bench.sh [build dir] [extra bench options]
# Trust the bubble figures only where the line says "trustworthy": true (a core per rank and
# compute not stretched by other processes); on a 2-core machine that is the 2-rank run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
cmake --build "$build" --target strata_pipeline_bench >/dev/null
for np in 2 4; do
  mpirun -np "$np" --oversubscribe -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
    "$build/bench/strata_pipeline_bench" "$@"
done
