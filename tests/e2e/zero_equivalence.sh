#!/usr/bin/env bash
# `mpirun -np 2 strata train --set parallel.zero=true` (optimizer state sharded, gradients
# reduce-scattered, parameters all-gathered) equals the plain data-parallel run: the averaged
# gradients are the same sums, so only the sharded clipping norm's summation order differs.
# (ZeRO checkpoints and their resume: zero_resume.sh.)
set -euo pipefail
strata=$1
src=$2
mpirun=$3
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
common=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.max_steps=20
        --set train.log_every=1 --set checkpoint.every=0 --set threads=1
        --set train.batch_size=32 --set schedule.warmup_steps=5)
mpi=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$mpirun" -np 2 --oversubscribe)
# SGD with momentum and a clip that changes the run (1.0 would not: the norm stays below it),
# and AdamW, whose state is what ZeRO shards.
sgd=(--set optim.name=sgd --set optim.lr=0.05 --set optim.momentum=0.9 --set train.grad_clip=0.3)
adamw=(--set optim.name=adamw --set optim.lr=0.002 --set optim.weight_decay=0.01)
for opt in sgd adamw; do
  declare -n extra=$opt
  for mode in dp zero; do
    zero=false; [ "$mode" = zero ] && zero=true
    "${mpi[@]}" "$strata" train "${common[@]}" "${extra[@]}" --set run_dir="$run/$opt-$mode" \
      --set parallel.zero=$zero > "$run/$opt-$mode.log"
  done
  /usr/bin/python3 - "$run" "$opt" <<'PY'
import json, sys
run, opt = sys.argv[1:]
def losses(name):
    return [l["loss"] for l in map(json.loads, open(f"{run}/{name}/metrics.jsonl")) if "loss" in l]
dp, zero = losses(f"{opt}-dp"), losses(f"{opt}-zero")
assert len(dp) == len(zero) == 20, (len(dp), len(zero))
worst = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(dp, zero))
print(f"{opt}: 20 steps, largest relative loss difference {worst:.2e}; "
      f"final {dp[-1]:.6f} vs {zero[-1]:.6f}")
assert worst < 1e-5, f"{opt}: ZeRO diverged from plain data parallel: {worst}"
assert dp[-1] < dp[0], f"{opt}: the loss did not fall: {dp[0]} -> {dp[-1]}"
PY
done
# The ZeRO path is the one taken: it refuses LARS, which needs whole-parameter norms.
"$strata" train "${common[@]}" --set run_dir="$run/lars" --set parallel.zero=true \
  --set checkpoint.every=0 --set optim.name=lars > "$run/lars.log" 2>&1 && exit 1
grep -q "^error: \[ZeroOptimizer\] LARS scales each parameter by its own norm" "$run/lars.log" \
  || { cat "$run/lars.log"; echo "parallel.zero did not build a ZeroOptimizer"; exit 1; }
echo "ZeRO equals plain DP"
