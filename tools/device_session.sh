#!/usr/bin/env bash
# The one call a session with the GPU machine makes (DESIGN.md section 6): tools/gpu_check.sh
# (build, CUDA tests, GPU benchmarks beside PyTorch), then the CPU pipeline benchmark with 2
# and 4 ranks (issue 5: bubbles are figures of the schedule only with a core per rank, which
# the 2-core CPU machines lack; this machine has 16). Results go to $OUT: gpu_check.json with
# its logs, and pipeline_bench.jsonl / pipeline_bench.log. Options go to gpu_check.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export OUT="${OUT:-$root/build-gpu/gpu_check}"
mkdir -p "$OUT"
"$root/tools/gpu_check.sh" "$@"
gpu_rc=$?
pipe_rc=0
if [ "${1:-}" != --build-only ]; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 \
    "$root/bench/pipeline_bench.sh" "$root/build-gpu" > "$OUT/pipeline_bench.jsonl" \
    2> "$OUT/pipeline_bench.log"
  pipe_rc=$?
fi
echo "device_session: gpu_check exit code $gpu_rc, pipeline bench exit code $pipe_rc ($OUT)"
[ "$gpu_rc" = 0 ] && [ "$pipe_rc" = 0 ]
