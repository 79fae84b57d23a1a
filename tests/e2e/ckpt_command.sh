#!/usr/bin/env bash
# `strata ckpt`: inspect lists names, dtypes and shapes; verify passes good files and fails a
# bit-flipped one naming the dataset (exit 1); export writes plain name -> array HDF5 that
# h5py reads with the same values as the checkpoint; diff tells equal checkpoints from others.
set -euo pipefail
strata=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ck=$work/run/checkpoints
"$strata" train --config "$src/configs/lenet5_fashion_mnist.json" --set run_dir="$work/run" \
  --set train.max_steps=4 --set train.batch_size=16 --set schedule.warmup_steps=0 \
  --set checkpoint.every=2 > /dev/null

"$strata" ckpt inspect "$ck" > "$work/inspect.log"
grep -qF "folder $ck: latest -> $ck/ckpt-4.h5" "$work/inspect.log"
grep -qF "$ck/ckpt-4.h5: strata checkpoint version 2, step 4, epoch 0" "$work/inspect.log"
grep -qE "^  model/conv1.weight +f32 +\[6, 1, 5, 5\] +600 B$" "$work/inspect.log"
grep -qE "^  rng/init +i64 +\[2\]" "$work/inspect.log"

"$strata" ckpt verify "$ck" > "$work/verify.log"
test "$(grep -c '^ok ' "$work/verify.log")" = 2

"$strata" ckpt export "$ck/ckpt-4.h5" "$work/plain.h5"
/usr/bin/python3 - "$work/plain.h5" "$ck/ckpt-4.h5" <<'PY'
import sys, h5py, numpy as np
plain, ckpt = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = sorted(ckpt["model"].keys())
assert sorted(k for k in plain.keys()) == names, (list(plain.keys()), names)
for n in names:
    assert np.array_equal(plain[n][()], ckpt["model"][n][()]), n
print("export: h5py reads", len(names), "tensors by dotted name")
PY

cp "$ck/ckpt-2.h5" "$work/flipped.h5"
/usr/bin/python3 - "$work/flipped.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    off = f["optimizer"]["fc1.weight"]["exp_avg"].id.get_offset()
with open(sys.argv[1], "r+b") as f:
    f.seek(off + 1000); b = f.read(1); f.seek(off + 1000); f.write(bytes([b[0] ^ 1]))
PY
if "$strata" ckpt verify "$ck/ckpt-4.h5" "$work/flipped.h5" > "$work/verify2.log"; then
  echo "verify accepted a damaged file"; exit 1
fi
grep -qF "ok      $ck/ckpt-4.h5 (step 4" "$work/verify2.log"
grep -qF "FAILED  $work/flipped.h5" "$work/verify2.log"
grep -qF "[checkpoint] $work/flipped.h5: dataset 'optimizer/fc1.weight/exp_avg' fails its checksum" \
  "$work/verify2.log"
# diff: a checkpoint equals itself (exit 0); step 2 and step 4 differ in the model, the
# optimizer state and the streams, each difference named (exit 1).
"$strata" ckpt diff "$ck/ckpt-4.h5" "$ck" > "$work/diff_same.log"
grep -qE "^identical: 0 of [0-9]+ entries differ \(step 4 vs 4\)$" "$work/diff_same.log"
if "$strata" ckpt diff "$ck/ckpt-2.h5" "$ck/ckpt-4.h5" > "$work/diff.log"; then
  echo "ckpt diff found steps 2 and 4 identical"; exit 1
fi
grep -qF "differs  step: 2 vs 4" "$work/diff.log"
grep -qE "^differs  model/conv1.weight: values differ \(largest absolute difference [0-9.e-]+\)$" \
  "$work/diff.log"
grep -qF "differs  optimizer/conv1.weight/exp_avg: values differ" "$work/diff.log"
grep -qF "differs  sampler/train: another position" "$work/diff.log"
grep -qE "^different: [0-9]+ of [0-9]+ entries differ \(step 2 vs 4\)$" "$work/diff.log"
echo "strata ckpt: inspect, verify, export and diff work"
