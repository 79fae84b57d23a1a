#!/usr/bin/env bash
# Crash safety: a character GPT saves a checkpoint after every step and is killed with
# SIGKILL at random moments (most of its time is spent saving), 20 times, each run resuming
# the last (`--resume auto`; odd trials save in the background). After every kill: `latest`
# names a checkpoint that verifies, every committed checkpoint verifies, and at most one
# temporary file of the killed save is left; a final run completes and leaves none.
set -euo pipefail
strata=$1
src=$2
trials=${3:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ck=$work/run/checkpoints
args=(--config "$src/configs/char_gpt_fortunes.json" --set run_dir="$work/run"
      --set data.path="$src/../shared/data/tinyshakespeare.txt" --set train.batch_size=4
      --set model.block_size=32 --set model.dropout=0.1 --set train.max_steps=100000
      --set schedule.warmup_steps=0 --set train.log_every=1 --set checkpoint.every=1
      --set checkpoint.keep=2 --set threads=1)
RANDOM=42
during_save=0
for ((t = 1; t <= trials; t++)); do
  async=$([ $((t % 2)) = 1 ] && echo true || echo false)
  "$strata" train "${args[@]}" --set checkpoint.async=$async --resume auto \
    > "$work/trial$t.log" 2>&1 &
  pid=$!
  sleep "$((1 + RANDOM % 2)).$((RANDOM % 10))"
  kill -9 $pid
  wait $pid 2> /dev/null || true
  tmps=$(find "$ck" -name '*.tmp' 2> /dev/null | wc -l)
  [ "$tmps" -gt 0 ] && during_save=$((during_save + 1))
  [ "$tmps" -le 1 ] || { echo "trial $t: $tmps temporary files"; ls -la "$ck"; exit 1; }
  test -f "$ck/latest" || { echo "trial $t: no latest pointer"; cat "$work/trial$t.log"; exit 1; }
  latest=$ck/$(cat "$ck/latest")
  "$strata" ckpt verify "$latest" > /dev/null ||
    { echo "trial $t: latest -> $latest does not verify"; exit 1; }
  "$strata" ckpt verify "$ck" > "$work/verify$t.log" ||
    { echo "trial $t: a committed checkpoint is damaged"; cat "$work/verify$t.log"; exit 1; }
  echo "trial $t (async=$async): killed; latest $(cat "$ck/latest"), $tmps temporary file(s)"
done
# The newest committed file, which is newer than `latest` when the kill fell between the
# rename and the pointer's move: it is complete (fsynced before the rename), so resume takes it.
step=$(ls "$ck" | sed -nE 's/^ckpt-([0-9]+)\.h5$/\1/p' | sort -n | tail -1)
"$strata" train "${args[@]}" --resume auto --set train.stop_at_step=$((step + 2)) > "$work/final.log"
grep -q "resume: continuing from $ck/ckpt-$step.h5" "$work/final.log" ||
  { echo "final run did not resume from ckpt-$step.h5"; cat "$work/final.log"; exit 1; }
test -z "$(find "$ck" -name '*.tmp')" || { echo "temporary files left"; ls -la "$ck"; exit 1; }
"$strata" ckpt verify "$ck" > /dev/null
echo "$trials kills ($during_save with a save in flight): no damaged or dangling checkpoint"
