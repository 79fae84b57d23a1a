#!/usr/bin/env bash
# Damaged checkpoints: `--resume auto` falls back past a bit-flipped newest file (naming it
# and the dataset, and moving it aside); truncated, foreign and wrong-version files given as
# --resume PATH fail with a clear error naming the file; a fresh run refuses to mix its
# checkpoints with an earlier run's; auto with no checkpoint starts fresh and says so.
set -euo pipefail
strata=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=$work/run
ck=$run/checkpoints
args=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.batch_size=16
      --set train.log_every=1 --set checkpoint.every=2 --set checkpoint.keep=3 --set threads=1
      --set schedule.warmup_steps=0
      --set run_dir="$run")

expect_fail() {  # expect_fail <expected message part> <command...>
  local want=$1; shift
  if "$@" > "$work/out.log" 2>&1; then echo "expected a failure: $*"; exit 1; fi
  grep -qF -- "$want" "$work/out.log" || { echo "missing '$want' in:"; cat "$work/out.log"; exit 1; }
}

"$strata" train "${args[@]}" --set train.max_steps=3 --resume auto > "$work/fresh.log"
grep -qF "resume: no checkpoint in $ck; starting fresh" "$work/fresh.log"
"$strata" train "${args[@]}" --set train.max_steps=6 --resume auto > /dev/null
ls "$ck" | sort > "$work/files"
printf 'ckpt-3.h5\nckpt-4.h5\nckpt-6.h5\nlatest\n' | diff - "$work/files"
test "$(cat "$ck/latest")" = ckpt-6.h5

# A fresh run into a folder holding checkpoints is refused.
expect_fail "[resume] $ck already holds checkpoints of an earlier run (newest: $ck/ckpt-6.h5)" \
  "$strata" train "${args[@]}" --set train.max_steps=6

# Flip one bit in the data of conv1.weight in the newest checkpoint.
/usr/bin/python3 - "$ck/ckpt-6.h5" <<'PY'
import sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    off = f["model"]["conv1.weight"].id.get_offset()
with open(path, "r+b") as f:
    f.seek(off + 5); b = f.read(1); f.seek(off + 5); f.write(bytes([b[0] ^ 0x10]))
PY
expect_fail "[checkpoint] $ck/ckpt-6.h5: dataset 'model/conv1.weight' fails its checksum" \
  "$strata" train "${args[@]}" --set train.max_steps=8 --resume "$ck/ckpt-6.h5"
"$strata" train "${args[@]}" --set train.max_steps=8 --resume auto > "$work/fallback.log"
grep -qF "resume: skipping a damaged checkpoint (moved aside as *.damaged): [checkpoint] $ck/ckpt-6.h5: dataset 'model/conv1.weight' fails its checksum" "$work/fallback.log"
grep -qF "resume: continuing from $ck/ckpt-4.h5 (step 4, epoch 0)" "$work/fallback.log"
test -f "$ck/ckpt-6.h5.damaged"
test "$(cat "$ck/latest")" = ckpt-8.h5
# The log reads as one run: steps 1..8 once each.
/usr/bin/python3 -c "
import json, sys
r = [json.loads(l) for l in open('$run/metrics.jsonl')]
s = [x['step'] for x in r if 'loss' in x]
assert s == list(range(1, 9)), s"

# Truncated, foreign and other-version files named by --resume.
cp "$ck/ckpt-8.h5" "$work/trunc.h5"
truncate -s 3000 "$work/trunc.h5"
expect_fail "[checkpoint] cannot open $work/trunc.h5: [hdf5] cannot open '$work/trunc.h5': unable to open file (truncated file: eof = 3000" \
  "$strata" train "${args[@]}" --set train.max_steps=10 --resume "$work/trunc.h5"
/usr/bin/python3 -c "
import h5py, numpy as np
with h5py.File('$work/foreign.h5', 'w') as f: f['w'] = np.zeros(3)
import shutil; shutil.copy('$ck/ckpt-8.h5', '$work/v3.h5')
with h5py.File('$work/v3.h5', 'a') as f: f.attrs['version'] = np.bytes_('3')"
expect_fail "[checkpoint] $work/foreign.h5 is not a strata checkpoint" \
  "$strata" train "${args[@]}" --set train.max_steps=10 --resume "$work/foreign.h5"
expect_fail "[checkpoint] $work/v3.h5 has format version 3, but this build of strata reads versions 1 to 2" \
  "$strata" train "${args[@]}" --set train.max_steps=10 --resume "$work/v3.h5"
# A checkpoint of another model does not load.
expect_fail "[resume] the checkpoint does not fit this run's model or optimizer" \
  "$strata" train --config "$src/configs/char_gpt_fortunes.json" \
  --set data.path="$src/../shared/data/tinyshakespeare.txt" --set run_dir="$work/gpt" \
  --set train.max_steps=2 --set schedule.warmup_steps=0 --resume "$ck/ckpt-8.h5"
# When every checkpoint is damaged, auto fails instead of silently starting over.
for f in "$ck"/ckpt-*.h5; do truncate -s 100 "$f"; done
expect_fail "[resume] no checkpoint in $ck loads" \
  "$strata" train "${args[@]}" --set train.max_steps=10 --resume auto
# A save that fails in the background stops the run at the next step with the reason.
touch "$work/blocker"
expect_fail "[checkpoint] the background save of step 2 failed: [checkpoint] cannot create checkpoint.dir $work/blocker/ck" \
  "$strata" train "${args[@]}" --set run_dir="$work/run_async" --set train.max_steps=6 \
  --set checkpoint.async=true --set checkpoint.dir="$work/blocker/ck"
echo "bad checkpoint files: all errors as expected"
