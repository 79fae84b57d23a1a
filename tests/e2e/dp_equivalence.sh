#!/usr/bin/env bash
# `mpirun -np 2 strata train` with 32 samples per rank equals one process with 64: the same
# samples per step (the sampler shards one global order), gradients averaged over ranks, so
# the logged losses of every step agree to f32 rounding. (SGD: Adam would amplify the
# rounding differences of near-zero gradients into visible drift.)
set -euo pipefail
strata=$1
src=$2
mpirun=$3
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
common=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.max_steps=30
        --set train.log_every=1 --set checkpoint.every=0 --set threads=1
        --set schedule.warmup_steps=5 --set optim.name=sgd --set optim.lr=0.05)
"$strata" train "${common[@]}" --set run_dir="$run/one" --set train.batch_size=64 > "$run/one.log"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$mpirun" -np 2 --oversubscribe \
  "$strata" train "${common[@]}" --set run_dir="$run/two" --set train.batch_size=32 > "$run/two.log"
/usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
def losses(name):
    return [l["loss"] for l in map(json.loads, open(f"{run}/{name}/metrics.jsonl")) if "loss" in l]
one, two = losses("one"), losses("two")
assert len(one) == len(two) == 30, (len(one), len(two))
worst = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(one, two))
print(f"30 steps, largest relative loss difference {worst:.2e}; final {one[-1]:.6f} vs {two[-1]:.6f}")
assert worst < 1e-4, f"dp=2 diverged from one process: {worst}"
PY
