#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the cluster tests (tests/test_cluster_slurm.py) and CI:
#   scripts/local-slurm.sh start|stop|status|env
# start: installs slurm-wlm and munge from the distribution when missing (apt-get, root), writes a munge key
# and a slurm.conf (this host, its real CPUs and memory from `slurmd -C`, one partition `debug`) under
# $FALSR_SLURM_DIR (default /tmp/falsr-slurm), starts munged, slurmctld and slurmd there and waits until
# `sinfo` shows the node idle. Idempotent: a running cluster is left as it is. Nothing is written outside
# that folder (no /etc, no systemd): clients find the cluster through SLURM_CONF, so use it with
#   eval "$(scripts/local-slurm.sh env)"      # SLURM_CONF and PATH (the sacct shim, see below)
# stop: kills the daemons it started (their pid files), nothing else.
# There is no slurmdbd (it needs a MySQL server): job states come from the job completion log, read by a
# small `sacct` wrapper in $FALSR_SLURM_DIR/bin that submitit calls (see write_sacct_shim).
set -euo pipefail

DIR="${FALSR_SLURM_DIR:-/tmp/falsr-slurm}"
PORT="${FALSR_SLURM_PORT:-6817}"   # slurmctld; slurmd listens on PORT+1
# FALSR_SLURM_FAKE_GPUS=N: the node also declares N GPUs as GRES (gpu), backed by /dev/null, so that
# `--gpus-per-node` jobs are scheduled and counted as on a GPU node; there is no GPU behind them.
FAKE_GPUS="${FALSR_SLURM_FAKE_GPUS:-0}"
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
SBIN=/usr/sbin

die() { echo "local-slurm: $*" >&2; exit 1; }

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  [ -x "$SBIN/munged" ] || missing+=(munge)
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them (apt-get install slurm-wlm munge) or run as root"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here: install slurm-wlm and munge"
  echo "local-slurm: installing ${missing[*]} (apt-get)"
  { apt-get install -y -q slurm-wlm munge || { apt-get update -q && apt-get install -y -q slurm-wlm munge; }; } \
    >"$DIR/apt.log" 2>&1 || die "apt-get install slurm-wlm munge failed (see $DIR/apt.log)"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  local node cpus mem_per_cpu
  node="$(hostname -s)"
  # slurmd -C prints this machine's NodeName=... CPUs=... RealMemory=...; keep the hardware fields.
  cpus="$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')"
  [ -n "$cpus" ] || die "slurmd -C printed no hardware description"
  # A job's default memory is its share per CPU (else each job would ask for the whole node).
  mem_per_cpu=$(( $(echo "$cpus" | grep -o 'RealMemory=[0-9]*' | cut -d= -f2) / $(echo "$cpus" | grep -o 'CPUs=[0-9]*' | cut -d= -f2) ))
  # Slurm runs jobs as the submitting user; SlurmUser/SlurmdUser root so that root (CI) can submit too.
  cat >"$CONF" <<EOF
# Written by scripts/local-slurm.sh: a one-node test cluster (not for production).
ClusterName=falsr-local
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in containers: track job processes by their parent, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# One job per core, memory as a consumable: several candidate jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$mem_per_cpu
SchedulerType=sched/backfill
# No slurmdbd: finished jobs go to a completion log that the sacct shim reads.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
MpiDefault=none
$([ "$FAKE_GPUS" -gt 0 ] && echo "GresTypes=gpu")
ReturnToService=2
# scancel sends SIGTERM (which submitit ignores), then SIGKILL after KillWait seconds.
KillWait=5
MinJobAge=300
SlurmdTimeout=60
NodeName=$node $cpus $([ "$FAKE_GPUS" -gt 0 ] && echo "Gres=gpu:$FAKE_GPUS") State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# submitit polls job states with `sacct -o JobID,State,NodeList --parsable2 -j <ids>`; without slurmdbd
# sacct answers from the job completion log (--completion), and squeue knows the jobs still queued/running.
write_sacct_shim() {
  cat >"$DIR/bin/sacct" <<'EOF'
#!/usr/bin/env bash
# sacct for a cluster without slurmdbd (scripts/local-slurm.sh): finished jobs from the completion log,
# the others from squeue, in sacct's --parsable2 layout (JobID|State|NodeList).
ids=""; args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = "-j" ] && ids="${args[i+1]}"; done
echo "JobID|State|NodeList"
[ -n "$ids" ] || exit 0
squeue -h -t all -o '%i|%T|%N' -j "$ids" 2>/dev/null
/usr/bin/sacct --completion --parsable2 --noheader -o JobID,State,NodeList -j "$ids" 2>/dev/null
exit 0
EOF
  chmod +x "$DIR/bin/sacct"
}

start_munge() {
  alive "$DIR/run/munged.pid" && return
  [ -s "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null 2>&1 ||
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$DIR/munge/munge.key"
  "$SBIN/munged" --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    >>"$DIR/log/munged.log" 2>&1 || die "munged did not start (see $DIR/log/munged.log)"
}

start() {
  [ "$(id -u)" -eq 0 ] || [ -w "$(dirname "$DIR")" ] || die "cannot write $DIR: run as root or set FALSR_SLURM_DIR"
  mkdir -p "$DIR"/{etc,munge,state,spool/slurmd,run,log,bin}
  chmod 0700 "$DIR/munge"
  install_packages
  [ "$(id -u)" -eq 0 ] || die "slurmd must run as root (it starts jobs as their users): run as root"
  [ -f "$CONF" ] || write_config
  if [ "$FAKE_GPUS" -gt 0 ] && [ ! -f "$DIR/etc/gres.conf" ]; then
    for i in $(seq 0 $((FAKE_GPUS - 1))); do echo "NodeName=$(hostname -s) Name=gpu File=/dev/null"; done >"$DIR/etc/gres.conf"
  fi
  write_sacct_shim
  export SLURM_CONF="$CONF"
  start_munge
  alive "$DIR/run/slurmctld.pid" || "$SBIN/slurmctld" -f "$CONF" >>"$DIR/log/slurmctld.log" 2>&1 ||
    die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  alive "$DIR/run/slurmd.pid" || "$SBIN/slurmd" -f "$CONF" >>"$DIR/log/slurmd.log" 2>&1 ||
    die "slurmd did not start (see $DIR/log/slurmd.log)"
  local state=""
  for _ in $(seq 60); do
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1)"
    case "$state" in
      idle|mixed|allocated) echo "local-slurm: node $(hostname -s) $state ($(grep -o 'CPUs=[0-9]*' "$CONF"), $(grep -o 'RealMemory=[0-9]*' "$CONF") MB); SLURM_CONF=$CONF"; return ;;
      down*|drain*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "the node is not idle after 60 s (sinfo: ${state:-no answer}; see $DIR/log/)"
}

stop() {
  local name
  for name in slurmd slurmctld munged; do
    if alive "$DIR/run/$name.pid"; then
      kill "$(cat "$DIR/run/$name.pid")"
      for _ in $(seq 20); do alive "$DIR/run/$name.pid" || break; sleep 0.5; done
    fi
    rm -f "$DIR/run/$name.pid"
  done
  echo "local-slurm: stopped"
}

status() {
  local name up=0
  for name in munged slurmctld slurmd; do
    if alive "$DIR/run/$name.pid"; then echo "$name: running (pid $(cat "$DIR/run/$name.pid"))"; else echo "$name: stopped"; up=1; fi
  done
  [ $up -eq 0 ] && SLURM_CONF="$CONF" sinfo -N
  return $up
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF PATH=$DIR/bin:\$PATH" ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac
