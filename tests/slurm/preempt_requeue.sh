#!/usr/bin/env bash
# A real Slurm job (issue 6): launch/slurm/cpu.sbatch trains LeNet-5 on 2 ranks, gets the
# preemption signal mid-run (scancel --signal=USR1 --batch, as --signal=B:USR1@N would),
# checkpoints, exits 75, requeues itself and resumes with --resume auto; its losses, final eval
# and final checkpoint equal those of the same job never interrupted, bit for bit.
# Starts the single-node cluster of tools/slurm_local.sh unless one is running, and stops it
# again only if it started it. Exit 77 (skipped) when no cluster can be had without root.
# Usage: preempt_requeue.sh STRATA_BINARY SOURCE_DIR
set -euo pipefail
strata=$(realpath "$1")
src=$(realpath "$2")
total=300  # about 8 s of training here; the signal comes after step 20
started_cluster=0
jobs=()
work=$(mktemp -d /tmp/strata-slurm-test.XXXXXX)

log() { echo "[slurm test $(date +%T)] $*"; }
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.out; do
    [ -f "$f" ] && { echo "---- $f (progress lines left out)"; grep -v '^step ' "$f"; }
  done >&2
  squeue >&2 2>/dev/null || true
  exit 1
}

cleanup() {
  local rc=$?
  for j in "${jobs[@]}"; do scancel "$j" 2>/dev/null || true; done
  for j in "${jobs[@]}"; do  # up to 30 s for cancelled jobs to leave the node
    for _ in $(seq 60); do
      [ -z "$(squeue -h -j "$j" -o %T 2>/dev/null)" ] && break
      sleep 0.5
    done
  done
  if [ "$started_cluster" = 1 ]; then "$src/tools/slurm_local.sh" stop 8>&- || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# One instance at a time: test runs of several build folders share the one cluster, and one
# of them stopping it would kill the other's job. (8>&- below: daemons must not inherit it.)
exec 8>/tmp/strata-slurm-test.lock
log "waiting for the lock /tmp/strata-slurm-test.lock (other runs of this test)"
flock -w 300 8 || fail "another run of this test held /tmp/strata-slurm-test.lock for 300 s"

if ! "$src/tools/slurm_local.sh" running; then
  [ "$(id -u)" = 0 ] || fail "no Slurm cluster is running and starting one needs root: run \
this test as root, or start the cluster first with 'sudo tools/slurm_local.sh start'"
  log "starting the local cluster (tools/slurm_local.sh start)"
  started_cluster=1
  "$src/tools/slurm_local.sh" start >"$work/cluster.log" 2>&1 8>&- ||
    { cat "$work/cluster.log" >&2; fail "tools/slurm_local.sh start failed"; }
fi

# submit NAME [ENV=VALUE ...]: sbatch the CPU script for 2 ranks on one node; prints the job id.
submit() {
  local name=$1
  shift
  env "$@" STRATA_BIN="$strata" STRATA_HOME="$src" \
    sbatch --parsable --job-name="strata-test-$name" --nodes=1 --ntasks-per-node=2 \
    --cpus-per-task=1 --time=10 --output="$work/$name.out" \
    "$src/launch/slurm/cpu.sbatch" \
    --config "$src/configs/lenet5_fashion_mnist.json" --set run_dir="$work/$name" \
    --set train.max_steps=$total --set train.batch_size=32 --set train.log_every=1 \
    --set schedule.warmup_steps=10 --set checkpoint.every=10 --set threads=1
}

state() { scontrol show job "$1" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p'; }

# wait_done JOB SECONDS: until the job completes; fails on any other end or on the deadline.
wait_done() {
  local s=""
  for _ in $(seq $(($2 * 2))); do
    s=$(state "$1")
    case "$s" in
      COMPLETED) return 0 ;;
      FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        fail "job $1 ended $s: $(scontrol show job "$1" | grep -Eo '(ExitCode|Reason)=[^ ]*' | xargs)"
        ;;
    esac
    sleep 0.5
  done
  fail "job $1 not completed after $2 s (state ${s:-unknown})"
}

# 1. The job never interrupted, through mpirun inside the allocation.
log "submitting the uninterrupted job (STRATA_LAUNCHER=mpirun)"
job=$(submit straight STRATA_LAUNCHER=mpirun)
jobs+=("$job")
wait_done "$job" 120
log "job $job completed"

# 2. The same job through srun, preempted after 20 steps.
log "submitting the job to preempt (STRATA_LAUNCHER=srun)"
job=$(submit split STRATA_LAUNCHER=srun)
jobs+=("$job")
metrics="$work/split/metrics.jsonl"
for i in $(seq 1201); do  # up to 120 s for 20 steps (this includes waiting for the node)
  [ -f "$metrics" ] && [ "$(wc -l <"$metrics")" -ge 20 ] && break
  [ "$i" = 1201 ] && fail "job $job logged no 20 steps in 120 s (state $(state "$job"))"
  if [ $((i % 20)) = 0 ]; then
    case "$(state "$job")" in COMPLETED | FAILED | CANCELLED) fail "job $job ended before the signal" ;; esac
  fi
  sleep 0.1
done
log "step $(wc -l <"$metrics") logged: scancel --signal=USR1 --batch $job"
scancel --signal=USR1 --batch "$job"
wait_done "$job" 180
log "job $job completed"

# 3. It was preempted, requeued and resumed, and ended as the job never interrupted did.
out="$work/split.out"
step=$(sed -nE 's/^preempted by signal 10: checkpointed after step ([0-9]+); exiting with code 75.*/\1/p' "$out")
[ -n "$step" ] || fail "job $job printed no preemption line"
[ "$step" -lt $total ] || fail "job $job was preempted only at step $step of $total"
grep -q "^train.sh: strata checkpointed and stopped (exit 75); requeueing job $job$" "$out" ||
  fail "job $job did not requeue itself"
grep -q "^resume: continuing from $work/split/checkpoints/ckpt-$step.h5 (step $step" "$out" ||
  fail "job $job did not resume from ckpt-$step.h5"
restarts=$(scontrol show job "$job" | sed -nE 's/.*Restarts=([0-9]+).*/\1/p')
[ "$restarts" = 1 ] || fail "job $job restarted $restarts times, expected 1"
/usr/bin/python3 "$src/tests/e2e/compare_runs.py" "$work" $total ||
  fail "the preempted job did not end as the uninterrupted one"
log "preempted at step $step, requeued, resumed; same result as the uninterrupted job"
