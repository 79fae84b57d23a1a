#!/usr/bin/env bash
# Mixed precision through the command (issue 3): a character GPT trains 30 steps in f32, with
# train.amp=bf16 and with train.amp=fp16 (loss scale 1024, which never overflows here); both
# stay close to f32's losses and fp16 logs its loss scale. fp16 with a loss scale of 2^32
# skips its first steps, halving the scale each time, says so, and then trains.
set -euo pipefail
strata=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/e2e/resume_jobs.sh
source "$(dirname "$0")/resume_jobs.sh"
job_args gpt "$src"
args+=(--set train.max_steps=30 --set train.log_every=1 --set threads=2 --set checkpoint.every=0
       --set model.dropout=0.0)
for amp in none bf16 fp16; do
  "$strata" train "${args[@]}" --set train.amp=$amp --set train.loss_scale.init=1024 \
    --set run_dir="$work/$amp" > "$work/$amp.log"
done
"$strata" train "${args[@]}" --set train.amp=fp16 --set train.loss_scale.init=4294967296 \
  --set run_dir="$work/huge" > "$work/huge.log"
grep -q "| scale 1024" "$work/fp16.log"
grep -q "skipped 1 step(s): inf/NaN gradients" "$work/huge.log"

/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def lines(run):
    records = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
    return [r for r in records if "loss" in r]
ref = [r["loss"] for r in lines("none")]
assert len(ref) == 30 and ref[-1] < ref[0] - 0.5, f"f32 did not train: {ref[0]} -> {ref[-1]}"
# Tolerance: every step within 0.05 of f32's loss (about 2% of it), the last ten on average
# within 1% (bf16 keeps 8 mantissa bits, f16 11; the GEMMs round their operands to them).
for amp in ("bf16", "fp16"):
    got = [r["loss"] for r in lines(amp)]
    worst = max(abs(a - b) for a, b in zip(got, ref))
    tail = abs(sum(got[-10:]) - sum(ref[-10:])) / sum(ref[-10:])
    print(f"{amp}: worst step difference {worst:.4f}, last-10 mean relative {tail:.4%}, "
          f"final {got[-1]:.4f} vs f32 {ref[-1]:.4f}")
    assert worst < 0.05 and tail < 0.01, (amp, worst, tail)
    assert got != ref, f"{amp} gave f32's losses bit for bit: autocast did nothing"
fp16 = lines("fp16")
assert all(r["loss_scale"] == 1024.0 and r["skipped"] == 0 for r in fp16), fp16[-1]
huge = lines("huge")
skipped = [r["skipped"] for r in huge]
scales = [r["loss_scale"] for r in huge]
k = skipped[-1]
print(f"loss scale 2^32: skipped the first {k} steps; scale then {scales[-1]:g}")
assert k >= 1 and skipped[:k] == list(range(1, k + 1)), skipped
assert all(s == 2.0 ** 32 / 2 ** n for s, n in zip(scales, skipped)), scales
assert huge[-1]["loss"] < huge[0]["loss"] - 0.5, "fp16 did not train after skipping"
PY
