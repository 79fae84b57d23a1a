#!/usr/bin/env bash
# A character GPT trains on Tiny Shakespeare: validation loss falls well below the uniform
# baseline ln(65) = 4.17 within 300 steps.
set -euo pipefail
strata=$1
src=$2
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
"$strata" train --config "$src/configs/char_gpt_fortunes.json" --set run_dir="$run" \
  --set data.path="$src/../shared/data/tinyshakespeare.txt" --set train.max_steps=300 \
  --set train.eval_every=300 --set schedule.warmup_steps=30
/usr/bin/python3 - "$run" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
evals = [l["eval"]["loss"] for l in lines if "eval" in l]
first = [l["loss"] for l in lines if "loss" in l][0]
print("first logged loss", first, "final eval loss", evals[-1])
assert evals[-1] < 2.6, f"validation loss {evals[-1]} did not fall below 2.6"
PY
