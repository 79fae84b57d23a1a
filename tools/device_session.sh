#!/usr/bin/env bash
# The one call a session with the GPU machine makes (DESIGN.md section 6): the build of
# tools/gpu_check.sh, then the CPU pipeline benchmark with 2 and 4 ranks (issue 5: bubbles are
# figures of the schedule only with a core per rank, which the 2-core CPU machines lack; this
# machine has 16; it takes seconds, so it runs before the long GPU part), then gpu_check.sh's
# CUDA tests and GPU benchmarks beside PyTorch. Results go to $OUT as they are made:
# pipeline_bench.jsonl / .log, then gpu_check.json with its logs. Options go to gpu_check.sh
# (--build-only: only the build, the dry run for a CPU machine).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The device tool kills the command at 600 s and then returns only what is already in $OUT:
# gpu_check.sh cuts its tests and benchmarks to end by this deadline and republishes
# gpu_check.json and gpu_check_files.tgz after every step (the tool returns at most 8 files).
export STRATA_DEADLINE="${STRATA_DEADLINE:-$(($(date +%s) + ${STRATA_BUDGET_S:-560}))}"
export OUT="${OUT:-$root/build-gpu/gpu_check}"
mkdir -p "$OUT"
"$root/tools/gpu_check.sh" --build-only
gpu_rc=$?
pipe_rc=0
if [ "$gpu_rc" = 0 ] && [ "${1:-}" != --build-only ]; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 120 \
    "$root/bench/pipeline_bench.sh" "$root/build-gpu" > "$OUT/pipeline_bench.jsonl" \
    2> "$OUT/pipeline_bench.log"
  pipe_rc=$?
  "$root/tools/gpu_check.sh" "$@"
  gpu_rc=$?
fi
echo "device_session: gpu_check exit code $gpu_rc, pipeline bench exit code $pipe_rc ($OUT)"
[ "$gpu_rc" = 0 ] && [ "$pipe_rc" = 0 ]
