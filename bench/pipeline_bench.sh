#!/usr/bin/env bash
# Pipeline bubbles and activation memory for GPipe, 1F1B and interleaved 1F1B, with 2 and 4
# ranks (one thread each), twice: with real compute (Linear + GELU blocks), whose bubble
# figures hold only where the line says "trustworthy": true (a core per rank and compute not
# stretched by other processes; on a 2-core machine, the 2-rank run), and with timed-wait
# blocks (--wait_ms), which cost wall time without a core, so that 4 ranks on 2 cores measure
# the schedules, the executor and the MPI transfers. Usage:
#   bench/pipeline_bench.sh [build dir] [extra bench options]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
cmake --build "$build" --target strata_pipeline_bench >/dev/null
run() { # ranks, options...
  local np=$1
  shift
  mpirun -np "$np" --oversubscribe -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
    "$build/bench/strata_pipeline_bench" "$@"
}
for np in 2 4; do run "$np" "$@"; done
for np in 2 4; do run "$np" --wait_ms=5 --width=64 --rows=16 "$@"; done
