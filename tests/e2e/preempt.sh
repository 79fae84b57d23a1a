#!/usr/bin/env bash
# Preemption: a LeNet-5 run gets signal $3 (USR1 or TERM) while training, checkpoints at the
# next step boundary and exits with code 75; `--resume auto` finishes it, and the result is
# bit for bit the run that was never interrupted (tests/e2e/compare_runs.py).
set -euo pipefail
strata=$1
src=$2
sig=$3
total=150
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.batch_size=32
      --set schedule.warmup_steps=10 --set train.max_steps=$total --set train.log_every=1
      --set threads=2 --set checkpoint.every=1000)
"$strata" train "${args[@]}" --set run_dir="$work/straight" > "$work/straight.log"

"$strata" train "${args[@]}" --set run_dir="$work/split" > "$work/first.log" &
pid=$!
for _ in $(seq 600); do  # wait (up to 60 s) until 10 steps are logged
  [ -f "$work/split/metrics.jsonl" ] && [ "$(wc -l < "$work/split/metrics.jsonl")" -ge 10 ] && break
  sleep 0.1
done
kill -s "$sig" $pid
rc=0
wait $pid || rc=$?
[ $rc = 75 ] || { echo "exit code $rc, expected 75"; cat "$work/first.log"; exit 1; }
step=$(sed -nE 's/^preempted by signal [0-9]+: checkpointed after step ([0-9]+); exiting with code 75, continue with --resume auto$/\1/p' "$work/first.log")
[ -n "$step" ] && [ "$step" -lt $total ] || { echo "no preemption line"; cat "$work/first.log"; exit 1; }
test -f "$work/split/checkpoints/ckpt-$step.h5"
"$strata" train "${args[@]}" --set run_dir="$work/split" --resume auto > "$work/second.log"
grep -q "resume: continuing from $work/split/checkpoints/ckpt-$step.h5 (step $step" "$work/second.log"
/usr/bin/python3 "$src/tests/e2e/compare_runs.py" "$work" $total
echo "SIG$sig at step $step: checkpointed, exited 75, resumed to the same result"
