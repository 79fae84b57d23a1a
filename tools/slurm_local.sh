#!/usr/bin/env bash
# A single-node Slurm cluster (munged, slurmctld, slurmd) on this machine, for trying the sbatch
# scripts of launch/slurm/ and for the `slurm` CTest label. Needs root; no systemd needed.
#   tools/slurm_local.sh start     install Slurm if missing, configure, start, wait until idle
#   tools/slurm_local.sh stop      cancel all jobs, stop the daemons that `start` started
#   tools/slurm_local.sh running   exit 0 if a cluster answers and its node can take jobs
#   tools/slurm_local.sh status    sinfo and squeue
# SLURM_LOCAL_DIR holds state, logs and pid files (default /tmp/strata-slurm). The config goes
# to /etc/slurm/slurm.conf (where every Slurm command looks), but never over one this script
# did not write.
set -euo pipefail
dir=${SLURM_LOCAL_DIR:-/tmp/strata-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by strata tools/slurm_local.sh"
host=$(hostname -s)

die() { echo "slurm_local: $*" >&2; exit 1; }

# stop_pid NAME PIDFILE: SIGTERM, up to 10 s to exit, then SIGKILL.
stop_pid() {
  [ -s "$2" ] || return 0
  local pid
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    echo "slurm_local: stopped $1 (pid $pid)"
  fi
  rm -f "$2"
}

running() {
  # Idle, mixed or allocated: the node answers and takes jobs. Without a slurmctld process
  # sinfo would retry for about 10 s before giving up.
  pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null &&
    timeout 10 sinfo -h -N -o %t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

install_if_missing() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root"
  echo "slurm_local: installing Slurm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  mkdir -p /run/munge
  chown munge:munge /etc/munge/munge.key /run/munge
  chmod 400 /etc/munge/munge.key
  if ! { [ -s /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
    runuser -u munge -- /usr/sbin/munged 9>&-  # daemonizes; writes /run/munge/munged.pid
    cp /run/munge/munged.pid "$dir/munged.pid"  # ours to stop
  fi
  munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
}

write_config() {
  if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    die "$conf exists and was not written by this script; not touching it"
  fi
  # The node as slurmd sees the hardware; 90% of the memory, so that jobs fit.
  local node mem
  node=$(slurmd -C | head -1)
  mem=$(sed -nE 's/.* RealMemory=([0-9]+).*/\1/p' <<<"$node")
  node=$(sed -E "s/ RealMemory=[0-9]+/ RealMemory=$((mem * 9 / 10))/" <<<"$node")
  mkdir -p /etc/slurm
  cat >"$conf" <<CONF
$marker
ClusterName=strata-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
# ...and then until the next scheduling pass (default every 60 s; backfill every 30 s).
SchedulerParameters=sched_interval=2,bf_interval=5
# srun needs pmix for OpenMPI programs here (plain srun and pmi2 fail in MPI_Init).
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MailProg=/bin/true
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=120 State=UP
CONF
}

start() {
  if running; then
    echo "slurm_local: a cluster is already running"
    sinfo
    return 0
  fi
  install_if_missing
  [ "$(id -u)" = 0 ] || die "starting the daemons needs root"
  mkdir -p "$dir"/{state,spool,log}
  start_munge
  write_config
  # Leftovers of an earlier start whose daemons died: stop them, then start clean (-c: no
  # jobs carried over from old state files).
  stop_pid slurmd "$dir/slurmd.pid"
  stop_pid slurmctld "$dir/slurmctld.pid"
  # 9>&-: the daemons must not hold this script's lock.
  slurmctld -c 9>&- || die "slurmctld did not start; see $dir/log/slurmctld.log"
  slurmd 9>&- || die "slurmd did not start; see $dir/log/slurmd.log"
  for _ in $(seq 60); do  # up to 30 s; idle after about 1 s here
    if running; then
      sinfo
      return 0
    fi
    sleep 0.5
  done
  echo "slurm_local: the node did not become idle in 30 s; logs in $dir/log:" >&2
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  sinfo >&2 || true
  return 1
}

stop() {
  # Jobs first: their slurmstepd processes would outlive slurmd and retry to report forever.
  if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    local jobs
    mapfile -t jobs < <(squeue -h -o %i 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
      echo "slurm_local: cancelling jobs ${jobs[*]}"
      scancel "${jobs[@]}" || true
      for _ in $(seq 60); do  # up to 30 s
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_pid slurmd "$dir/slurmd.pid"
  stop_pid slurmctld "$dir/slurmctld.pid"
  stop_pid munged "$dir/munged.pid"  # only if `start` started it
}

# One start or stop at a time (tests in several build folders may start the cluster at once).
lock() {
  mkdir -p "$dir"
  exec 9>"$dir.lock"
  flock -w 120 9 || die "another slurm_local.sh holds $dir.lock for over 120 s"
}

case "${1:-}" in
  start) lock && start ;;
  stop) lock && stop ;;
  running) running ;;
  status) sinfo && squeue ;;
  *)
    echo "usage: $0 start|stop|running|status" >&2
    exit 2
    ;;
esac
