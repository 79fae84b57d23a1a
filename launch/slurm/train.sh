#!/usr/bin/env bash
# The body of the sbatch scripts beside it: runs `strata train ARGS... --resume auto` on every
# task of the allocation, forwards the preemption warning to it, and requeues the job when
# strata checkpointed on a signal and exited with code 75 (launch::kPreemptedExitCode).
# Exit code: 0 when training finished or the job was requeued; strata's code otherwise.
# Env: STRATA_BIN   the strata binary (default: `strata` on PATH, else
#                   $SLURM_SUBMIT_DIR/build/launch/strata)
#      STRATA_LAUNCHER  srun (default: srun --mpi=pmix, one rank per task) or mpirun (OpenMPI's
#                   mpirun inside the allocation; it reads the task count from Slurm)
#      STRATA_REQUEUE   1 (default): requeue on exit code 75; 0: exit 75 and let the
#                   submitter resubmit
set -uo pipefail
readonly preempted=75

[ -n "${SLURM_JOB_ID:-}" ] || { echo "train.sh: not inside a Slurm job (submit with sbatch)" >&2; exit 2; }
bin=${STRATA_BIN:-$(command -v strata || echo "${SLURM_SUBMIT_DIR:-.}/build/launch/strata")}
[ -x "$bin" ] || { echo "train.sh: no strata binary at '$bin'; set STRATA_BIN" >&2; exit 2; }

case "${STRATA_LAUNCHER:-srun}" in
  srun) launcher=(srun --mpi=pmix --kill-on-bad-exit=0) ;;
  mpirun)
    # mpirun binds each rank to one core by default; strata sizes its own thread pool from
    # the cores it may use, so leave them unbound.
    launcher=(mpirun --bind-to none)
    if [ "$(id -u)" = 0 ]; then
      export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    ;;
  *) echo "train.sh: STRATA_LAUNCHER must be srun or mpirun, not '$STRATA_LAUNCHER'" >&2; exit 2 ;;
esac

echo "train.sh: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-?}," \
  "${SLURM_NTASKS:-?} tasks, ${launcher[0]}, $(date -Is)"

# Bash runs a trap only between commands, so the launcher runs in the background and the
# shell waits; the trap passes the signal on (srun and mpirun both forward SIGUSR1 to every
# rank), and strata checkpoints at its next step boundary. SIGTERM (scancel, or the time
# limit) is passed on as SIGUSR1 too, because mpirun would kill the ranks on SIGTERM.
pid=""
# shellcheck disable=SC2317  # called from the traps
forward() {
  echo "train.sh: got SIG$1 at $(date -Is); asking strata to checkpoint and stop"
  [ -n "$pid" ] && kill -USR1 "$pid" 2>/dev/null
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

"${launcher[@]}" "$bin" train "$@" --resume auto &
pid=$!
# `wait` returns early (128 + signal) when a trap ran; wait again while the launcher lives.
rc=0
wait "$pid" || rc=$?
while [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null; do
  rc=0
  wait "$pid" || rc=$?
done
# A trap can interrupt `wait` just as the launcher ends: its status is then still unread.
if [ "$rc" -gt 128 ]; then
  rc2=0
  wait "$pid" 2>/dev/null || rc2=$?
  [ "$rc2" = 127 ] || rc=$rc2
fi

if [ "$rc" = "$preempted" ]; then
  if [ "${STRATA_REQUEUE:-1}" = 1 ]; then
    echo "train.sh: strata checkpointed and stopped (exit $preempted); requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID" && exit 0
    echo "train.sh: scontrol requeue failed; resubmit this script to continue" >&2
  fi
  exit "$preempted"
fi
echo "train.sh: strata exited with code $rc at $(date -Is)"
exit "$rc"
