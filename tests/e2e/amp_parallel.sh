#!/usr/bin/env bash
# fp16 (train.amp=fp16) under every layout: the loss scaler decides on gradients averaged
# over data-parallel ranks, ZeRO shards and pipeline stages, and every rank agrees. With a
# first scale of 2^24 the first steps overflow and are skipped, then the scale grows every 3
# clean steps. Where each rank computes the same f16 products as the reference (same rows per
# GEMM: one micro-batch) the scale and skips match at every step and the losses to f32
# rounding: pp=2 follows one process, pp=2 x dp=2 and ZeRO follow plain dp=2 (whose smaller
# per-rank GEMMs overflow later than one process's). pp=2 with 4 micro-batches (each loss
# scaled in the executor's seed) skips, recovers and trains.
set -euo pipefail
strata=$1
src=$2
mpirun=$3
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
common=(--config "$src/configs/char_gpt_fortunes.json" --set train.max_steps=16
        --set data.path="$src/../shared/data/tinyshakespeare.txt"
        --set train.log_every=1 --set data.eval_batches=2 --set checkpoint.every=0
        --set threads=1 --set train.batch_size=16 --set model.n_layer=4 --set model.n_embd=64
        --set model.n_head=2 --set optim.name=sgd --set optim.lr=0.3 --set optim.momentum=0.9
        --set schedule.warmup_steps=2 --set train.amp=fp16 --set train.loss_scale.init=16777216
        --set train.loss_scale.growth_interval=3)
"$strata" train "${common[@]}" --set run_dir="$run/one" > "$run/one.log"
layout() {  # name ranks settings...
  local name=$1 np=$2
  shift 2
  "$mpirun" -np "$np" --oversubscribe "$strata" train "${common[@]}" --set run_dir="$run/$name" \
    "$@" > "$run/$name.log"
}
layout pp2 2 --set parallel.pp=2
layout dp2 2 --set train.batch_size=8
layout pp2dp2 4 --set parallel.pp=2 --set train.batch_size=8
layout zero2 2 --set parallel.zero=true --set train.batch_size=8
layout pp2mb4 2 --set parallel.pp=2 --set parallel.microbatches=4
/usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
def lines(name):
    return [r for r in map(json.loads, open(f"{run}/{name}/metrics.jsonl")) if "loss" in r]
for ref, name in (("one", "pp2"), ("dp2", "pp2dp2"), ("dp2", "zero2")):
    a, b = lines(ref), lines(name)
    assert len(a) == len(b) == 16, (name, len(b))
    scaler = [(r["loss_scale"], r["skipped"]) for r in a]
    assert scaler == [(r["loss_scale"], r["skipped"]) for r in b], (name, scaler, b)
    k = scaler[-1][1]
    assert 1 <= k < 12, f"{ref}: {k} steps skipped; the test wants a few"
    worst = max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b))
    print(f"{name} vs {ref}: same loss scale and skips at all 16 steps ({k} skipped, final "
          f"scale {scaler[-1][0]:g}); largest loss difference {worst:.2e}")
    assert worst < 1e-4, f"{name} diverged from {ref}"
mb = lines("pp2mb4")
k = mb[-1]["skipped"]
print(f"pp2 with 4 micro-batches: {k} skipped, loss {mb[0]['loss']:.3f} -> {mb[-1]['loss']:.3f}")
assert k >= 1 and mb[-1]["loss"] < mb[0]["loss"] - 0.5, mb[-1]
PY
