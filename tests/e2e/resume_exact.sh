#!/usr/bin/env bash
# Resume equals never stopping, bit for bit: 2N steps in one process against N steps, a
# checkpoint, and N more in a new process (`--resume auto`). Every step's loss and lr in
# metrics.jsonl, the final eval and every dataset of the final checkpoints (parameters,
# optimizer state, random streams, sampler) must be identical. $3 picks the job: lenet (LeNet-5
# on Fashion-MNIST), lenet_async (the same with background saves) or gpt (a character GPT
# with dropout on Tiny Shakespeare).
set -euo pipefail
strata=$1
src=$2
job=$3
n=12
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/e2e/resume_jobs.sh
source "$(dirname "$0")/resume_jobs.sh"
job_args "$job" "$src"
# Same threads in both runs: reductions are deterministic for a fixed thread count.
args+=(--set train.max_steps=$((2 * n)) --set train.log_every=1 --set threads=2
       --set checkpoint.every=5 --set checkpoint.keep=2)

"$strata" train "${args[@]}" --set run_dir="$work/straight" > "$work/straight.log"
"$strata" train "${args[@]}" --set run_dir="$work/split" --set train.stop_at_step=$n \
  > "$work/first.log"
grep -q "stopped after step $n" "$work/first.log"
test -f "$work/split/checkpoints/ckpt-$n.h5"
"$strata" train "${args[@]}" --set run_dir="$work/split" --resume auto > "$work/second.log"
grep -q "resume: continuing from $work/split/checkpoints/ckpt-$n.h5 (step $n" "$work/second.log"
grep -q "resume: config differs from the checkpoint's: train.stop_at_step ($n -> 0)" \
  "$work/second.log"

/usr/bin/python3 "$src/tests/e2e/compare_runs.py" "$work" $((2 * n))
