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
case $job in
  lenet|lenet_async)
    args=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.batch_size=32
          --set schedule.warmup_steps=4)
    [ "$job" = lenet_async ] && args+=(--set checkpoint.async=true) ;;
  gpt)
    args=(--config "$src/configs/char_gpt_fortunes.json"
          --set data.path="$src/../shared/data/tinyshakespeare.txt" --set model.n_layer=2
          --set model.n_embd=64 --set model.n_head=4 --set model.block_size=32
          --set model.dropout=0.2 --set train.batch_size=8 --set data.eval_batches=2
          --set schedule.warmup_steps=4) ;;
  *) echo "unknown job $job"; exit 1 ;;
esac
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
