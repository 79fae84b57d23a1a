#!/usr/bin/env bash
# Bad configs and data give one clear error naming the key or path and a non-zero exit.
set -uo pipefail
strata=$1
src=$2
cfg=$src/configs/lenet5_fashion_mnist.json
expect_error() {  # expect_error <expected substring> <args...>
  local want=$1
  shift
  out=$("$strata" "$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then echo "expected failure: $*"; exit 1; fi
  if ! grep -qF -- "$want" <<<"$out"; then echo "missing '$want' in: $out"; exit 1; fi
  echo "ok ($rc): $want"
}
expect_error "[config] unknown key 'train.epoch'" train --config "$cfg" --set train.epoch=3
expect_error "[config] train.batch_size must be an integer" train --config "$cfg" --set train.batch_size=big
expect_error "[config] optim.name: unknown optimizer 'adamx'" train --config "$cfg" --set optim.name=adamx --set run_dir=/tmp/strata_bad
expect_error "apt-get install dataset-fashion-mnist" train --config "$cfg" --set data.path=/nonexistent --set run_dir=/tmp/strata_bad
expect_error "[data] text path not found: /nonexistent.txt" train --config "$src/configs/char_gpt_fortunes.json" --set data.path=/nonexistent.txt --set run_dir=/tmp/strata_bad
bad=$(mktemp)
echo '{"train": {"epochs": 1,}}' > "$bad"
expect_error "is not valid JSON" train --config "$bad"
rm -f "$bad"
