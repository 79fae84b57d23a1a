#!/usr/bin/env bash
# device: a process asking for CUDA without a usable GPU gets one clear error line and exit
# code 1 before any other output (CUDA_VISIBLE_DEVICES="" hides every GPU, so this holds on a
# GPU machine too); bad values are config errors (exit code 2) naming the key.
set -uo pipefail
strata=$1
src=$2
cfg=$src/configs/char_gpt_fortunes.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for device in cuda cuda:0; do
  CUDA_VISIBLE_DEVICES="" "$strata" train --config "$cfg" --set device=$device \
    --set run_dir="$work/run" > "$work/out" 2> "$work/err"
  rc=$?
  [ $rc -eq 1 ] || fail "device=$device without a GPU: exit code $rc, expected 1"
  [ ! -s "$work/out" ] || fail "device=$device printed before failing: $(cat "$work/out")"
  [ "$(wc -l < "$work/err")" -eq 1 ] || fail "expected one error line, got: $(cat "$work/err")"
  grep -qF "error: [config] device: '$device' needs a CUDA GPU, but this process has none (" \
    "$work/err" || fail "unclear message: $(cat "$work/err")"
  grep -qF "); use device: cpu, or run on a machine with an NVIDIA GPU and its driver" \
    "$work/err" || fail "the message does not say what to do: $(cat "$work/err")"
  [ ! -e "$work/run" ] || fail "device=$device created the run folder before failing"
  echo "ok (1): $(cat "$work/err")"
done

for bad in gpu cuda:x cuda:-1; do
  "$strata" train --config "$cfg" --set device=$bad --set run_dir="$work/run" > "$work/out" \
    2> "$work/err"
  rc=$?
  [ $rc -eq 2 ] || fail "device=$bad: exit code $rc, expected 2 (a config error)"
  want="error: [config] device: unknown value '$bad'; use cpu, cuda (the GPU of this rank's local rank) or cuda:N (N >= 0)"
  [ "$(cat "$work/err")" = "$want" ] || fail "device=$bad: got '$(cat "$work/err")'"
  echo "ok (2): $want"
done
