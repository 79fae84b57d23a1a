#!/usr/bin/env bash
# The README's main job: LeNet-5 on Fashion-MNIST for 10 epochs reaches >= 90% test accuracy,
# writes metrics.jsonl in the documented format and saves the resolved config.
set -euo pipefail
strata=$1
src=$2
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
"$strata" train --config "$src/configs/lenet5_fashion_mnist.json" --set run_dir="$run" --set train.log_every=500
test -f "$run/config.json"
/usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
lines = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
train = [l for l in lines if "loss" in l]
evals = [l for l in lines if "eval" in l]
assert train and all({"step", "loss", "lr"} <= l.keys() for l in train), train[:2]
assert len(evals) == 10, f"expected one eval per epoch, got {len(evals)}"
final = evals[-1]["eval"]
print("final eval:", final)
assert final["accuracy"] >= 0.90, f"accuracy {final['accuracy']} < 0.90"
cfg = json.load(open(f"{run}/config.json"))
assert cfg["run_dir"] == run and cfg["train"]["epochs"] == 10
PY
