#!/usr/bin/env bash
# The ResNet job on a short budget: ResNet-20 on CIFAR-10 (configs/resnet20_cifar10.json) for
# 250 steps of 64 images (a third of an epoch, cosine to zero) reaches a test accuracy well
# above chance (10%) on 2000 test images: at least 35%. Augmentation is off here: it pays off
# over many epochs and only slows the first third of one (tests/e2e/resnet_dp.sh trains with
# it). About 3.5 minutes of CPU time: under 2 minutes alone on 2 cores.
set -euo pipefail
strata=$1
src=$2
data=$3
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
"$strata" train --config "$src/configs/resnet20_cifar10.json" --set data.path="$data/cifar10" \
  --set run_dir="$run" --set train.max_steps=250 --set train.batch_size=64 \
  --set schedule.warmup_steps=25 --set train.log_every=50 --set data.eval_samples=2000 \
  --set checkpoint.every=0 --set data.augment=false
/usr/bin/python3 - "$run" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
losses = [l["loss"] for l in lines if "loss" in l]
final = [l["eval"] for l in lines if "eval" in l][-1]
print(f"losses {losses[0]:.3f} -> {losses[-1]:.3f}; final eval {final}")
assert losses[-1] < losses[0] - 0.3, f"the training loss did not fall: {losses}"
assert final["accuracy"] >= 0.35, f"test accuracy {final['accuracy']} < 0.35 after 250 steps"
PY
