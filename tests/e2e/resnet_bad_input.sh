#!/usr/bin/env bash
# Bad classify settings for the ResNets give one clear error naming the key or path.
set -uo pipefail
strata=$1
src=$2
cfg=$src/configs/resnet20_cifar10.json
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
expect_error() {  # expect_error <expected substring> <args...>
  local want=$1
  shift
  out=$("$strata" "$@" --set run_dir="$run" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then echo "expected failure: $*"; exit 1; fi
  if ! grep -qF -- "$want" <<<"$out"; then echo "missing '$want' in: $out"; exit 1; fi
  echo "ok ($rc): $want"
}
expect_error "[data] image folder '$run/none/train' not found; set data.path" \
  train --config "$cfg" --set data.path="$run/none"
expect_error "[config] data.format: unknown format 'png'; choose idx" \
  train --config "$cfg" --set data.format=png
expect_error "[config] model resnet20 needs RGB images; the data at data.path has 1 channel(s)" \
  train --config "$cfg" --set data.format=idx --set data.path=/usr/share/datasets/fashion-mnist
expect_error "[config] data.std must be a list of 3 items" \
  train --config "$cfg" --set data.std=0.5
expect_error "[config] model.name: unknown model 'resnet18'" \
  train --config "$cfg" --set model.name=resnet18
# Train and test splits with other classes.
/usr/bin/python3 - "$run" <<'PY'
import os, sys
from PIL import Image
for split, classes in (("train", "ab"), ("test", "a")):
    for c in classes:
        os.makedirs(f"{sys.argv[1]}/mismatch/{split}/{c}")
        Image.new("RGB", (8, 8), (10, 20, 30)).save(f"{sys.argv[1]}/mismatch/{split}/{c}/0.jpg")
PY
expect_error "[data] the class folders of $run/mismatch/train and $run/mismatch/test differ" \
  train --config "$cfg" --set data.path="$run/mismatch"
