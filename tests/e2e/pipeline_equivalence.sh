#!/usr/bin/env bash
# `mpirun strata train` with pipeline stages equals one process: pp=2 (1F1B), pp=4 (GPipe),
# pp=2 x dp=2, interleaved pp=2 with 2 virtual stages and dp=2 alone train the character GPT,
# dropout on, with the same loss at every step and the same final evaluation, to f32 rounding
# (micro-batches and stages sum in another order; every layout masks the same elements). SGD: Adam would amplify the rounding of near-zero gradients.
set -euo pipefail
strata=$1
src=$2
mpirun=$3
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--config "$src/configs/char_gpt_fortunes.json" --set train.max_steps=20
        --set train.log_every=1 --set train.eval_every=10 --set data.eval_batches=2
        --set checkpoint.every=0 --set threads=1 --set train.batch_size=16
        --set model.n_layer=4 --set model.n_embd=64 --set model.n_head=2
        --set optim.name=sgd --set optim.lr=0.3 --set optim.momentum=0.9
        --set schedule.warmup_steps=2 --set model.dropout=0.1)
"$strata" train "${common[@]}" --set run_dir="$run/one" > "$run/one.log"
layout() {  # name ranks settings...
  local name=$1 np=$2
  shift 2
  "$mpirun" -np "$np" --oversubscribe "$strata" train "${common[@]}" --set run_dir="$run/$name" \
    "$@" > "$run/$name.log"
}
layout pp2 2 --set parallel.pp=2 --set parallel.microbatches=4
layout pp4 4 --set parallel.pp=4 --set parallel.microbatches=8 --set parallel.schedule=gpipe
layout pp2dp2 4 --set parallel.pp=2 --set parallel.microbatches=2 --set train.batch_size=8
layout interleaved 2 --set parallel.pp=2 --set parallel.microbatches=4 \
  --set parallel.schedule=interleaved --set parallel.virtual_stages=2
layout dp2 2 --set train.batch_size=8 --set parallel.zero=false
/usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
def records(name):
    return list(map(json.loads, open(f"{run}/{name}/metrics.jsonl")))
def losses(name):
    return [r["loss"] for r in records(name) if "loss" in r]
def evals(name):
    return [r["eval"]["loss"] for r in records(name) if "eval" in r]
one = losses("one")
assert len(one) == 20, len(one)
for name in ("pp2", "pp4", "pp2dp2", "interleaved", "dp2"):
    got = losses(name)
    assert len(got) == 20, (name, len(got))
    worst = max(abs(a - b) for a, b in zip(one, got))
    ev = max(abs(a - b) for a, b in zip(evals("one"), evals(name)))
    print(f"{name}: 20 steps, largest loss difference {worst:.2e}, eval {ev:.2e}; "
          f"final {one[-1]:.6f} vs {got[-1]:.6f}")
    assert worst < 1e-4 and ev < 1e-4, f"{name} diverged from one process"
PY
