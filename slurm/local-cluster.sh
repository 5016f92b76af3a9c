#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for tests: slurmctld + slurmd + slurmdbd (MariaDB accounting) + munge,
# two fake GPUs declared as GRES; requeued jobs start again after ~10 s (cred_expire, default 120 s).
# Runs as root without systemd; every daemon is tracked by its PID file.
# Usage: bash slurm/local-cluster.sh up|down|status
#   up      install Debian's slurm-wlm, munge, slurmdbd and mariadb when missing, configure, start what is not
#           running, then wait until `srun -n1 true` runs a job step (idempotent)
#   down    cancel every job, wait for the queue to empty, then stop each daemon by its PID, waiting for each
#   status  one line per daemon, then sinfo; exit 0 when all run, 3 otherwise
# Environment: LOCAL_SLURM_MAX_ARRAY_SIZE (default 3: small on purpose, so tests exercise array splitting),
#              LOCAL_SLURM_CPUS (default: the machine's CPUs, at least 4; jobs may share a core).
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
FAKE_GPU_DIR=/var/lib/slurm/fakegpu
DB_PASSWORD=slurmpw
KILL_WAIT_S=5
MAX_ARRAY_SIZE=${LOCAL_SLURM_MAX_ARRAY_SIZE:-3}

# name|pid file, in start order (down stops them in reverse)
DAEMONS=(
  "munged|/run/munge/munged.pid"
  "mariadbd|/run/mysqld/mysqld.pid"
  "slurmdbd|/run/slurmdbd.pid"
  "slurmctld|/run/slurmctld.pid"
  "slurmd|/run/slurmd.pid"
)

log() { echo "local-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_file_of() {
  local entry
  for entry in "${DAEMONS[@]}"; do
    if [ "${entry%%|*}" = "$1" ]; then echo "${entry#*|}"; return; fi
  done
  die "unknown daemon $1"
}

# Print the PID of a daemon when its PID file names a live process of that program (a stale file's PID
# may have been reused by something else), else nothing.
live_pid() {
  local pid_file pid
  pid_file=$(pid_file_of "$1")
  [ -s "$pid_file" ] || return 0
  pid=$(tr -dc '0-9' <"$pid_file")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then echo "$pid"; fi
}

# Wait (up to $2 seconds) for a command to succeed.
wait_for() {
  local what=$1 timeout_s=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${timeout_s}s waiting for $what"
    sleep 0.1
  done
}

install_packages() {
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sinfo >/dev/null || missing+=(slurm-client)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

# Write $2 to $1 (mode $3) when it differs; print "changed" when it did.
write_if_changed() {
  local path=$1 content=$2 mode=$3
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then return 0; fi
  printf '%s\n' "$content" >"$path.tmp"
  chmod "$mode" "$path.tmp"
  mv "$path.tmp" "$path"
  echo changed
}

slurm_conf() {
  local real_cpus real_mem cpus mem
  real_cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
  real_mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  cpus=${LOCAL_SLURM_CPUS:-$((real_cpus > 4 ? real_cpus : 4))}
  mem=$((real_mem > 4096 ? real_mem - 2048 : real_mem / 2))
  cat <<EOF
# written by slurm/local-cluster.sh
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$(pid_file_of slurmctld)
SlurmdPidFile=$(pid_file_of slurmd)
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SchedulerParameters=sched_interval=1
MinJobAge=300
KillWait=$KILL_WAIT_S
MaxArraySize=$MAX_ARRAY_SIZE
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.txt
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
EOF
}

gres_conf() {
  cat <<EOF
# written by slurm/local-cluster.sh; gres/gpu drops GPUs without File=, so the fake GPUs are char devices
AutoDetect=off
NodeName=localhost Name=gpu File=$FAKE_GPU_DIR/gpu[0-1]
EOF
}

slurmdbd_conf() {
  cat <<EOF
# written by slurm/local-cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$(pid_file_of slurmdbd)
EOF
}

# Write the configuration; print "changed" when slurm.conf or gres.conf changed.
configure() {
  local changed="" gpu
  mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR" "$FAKE_GPU_DIR" /run/munge /run/mysqld
  chown munge:munge /run/munge
  chown mysql:mysql /run/mysqld
  for gpu in 0 1; do
    [ -c "$FAKE_GPU_DIR/gpu$gpu" ] || mknod "$FAKE_GPU_DIR/gpu$gpu" c 1 3
  done
  changed+=$(write_if_changed "$CONF_DIR/slurm.conf" "$(slurm_conf)" 644)
  changed+=$(write_if_changed "$CONF_DIR/gres.conf" "$(gres_conf)" 644)
  write_if_changed "$CONF_DIR/slurmdbd.conf" "$(slurmdbd_conf)" 600 >/dev/null
  [ -z "$changed" ] || echo changed
}

start_munged() {
  [ -z "$(live_pid munged)" ] || return 0
  runuser -u munge -- /usr/sbin/munged
  wait_for "munged" 10 bash -c 'munge -n | unmunge'
}

start_mariadbd() {
  if [ -z "$(live_pid mariadbd)" ]; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file="$(pid_file_of mariadbd)" \
      >>"$LOG_DIR/mariadb.log" 2>&1 &
    wait_for "mariadbd" 30 mariadb-admin ping
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
  if [ -z "$(live_pid slurmdbd)" ]; then
    /usr/sbin/slurmdbd
    wait_for "slurmdbd" 30 sacctmgr -n show cluster
  fi
  if [ -z "$(sacctmgr -n -P show cluster local format=Cluster)" ]; then
    sacctmgr -i add cluster local >/dev/null
  fi
}

start_slurm() {
  [ -n "$(live_pid slurmctld)" ] || /usr/sbin/slurmctld
  wait_for "slurmctld" 30 scontrol ping
  [ -n "$(live_pid slurmd)" ] || /usr/sbin/slurmd -N localhost
  wait_for "the node to register" 30 bash -c "sinfo -h -n localhost -o %T | grep -qE '^(idle|mixed|allocated)'"
}

# Stop one daemon by its PID file: SIGTERM, wait, SIGKILL the same PID after 30 s.
stop_daemon() {
  local name=$1 pid waited=0
  pid=$(live_pid "$name")
  [ -n "$pid" ] || return 0
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -eq 300 ]; then
      log "$name (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$(pid_file_of "$name")"
  log "stopped $name (pid $pid)"
}

cancel_all_jobs() {
  [ -n "$(live_pid slurmctld)" ] || return 0
  local jobs deadline
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  [ -n "${jobs// /}" ] || return 0
  log "cancelling jobs $jobs"
  # shellcheck disable=SC2086
  scancel $jobs || true
  deadline=$((SECONDS + KILL_WAIT_S + 30))
  while [ -n "$(squeue -h -o %A 2>/dev/null)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { log "jobs still listed after cancel; stopping anyway"; break; }
    sleep 0.2
  done
}

cmd_up() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (starts munge, MariaDB and SLURM daemons)"
  local started=$SECONDS
  install_packages
  if [ "$(configure)" = changed ] && { [ -n "$(live_pid slurmctld)" ] || [ -n "$(live_pid slurmd)" ]; }; then
    log "configuration changed: restarting slurmctld and slurmd"
    cancel_all_jobs
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  start_munged
  start_mariadbd
  start_slurmdbd
  start_slurm
  if sinfo -h -n localhost -o %T | grep -qE 'drain|inval'; then
    scontrol update nodename=localhost state=resume
  fi
  timeout 60 srun -n1 true || die "srun -n1 true failed: see $LOG_DIR/slurmctld.log and slurmd.log"
  log "up in $((SECONDS - started)) s: $(sinfo -h -o '%P %N %G %c CPUs %T')"
}

cmd_down() {
  cancel_all_jobs
  local i
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop_daemon "${DAEMONS[i]%%|*}"
  done
}

cmd_status() {
  local entry name pid all_up=0
  for entry in "${DAEMONS[@]}"; do
    name=${entry%%|*}
    pid=$(live_pid "$name")
    if [ -n "$pid" ]; then echo "$name running (pid $pid)"; else echo "$name stopped"; all_up=3; fi
  done
  if [ -n "$(live_pid slurmctld)" ]; then sinfo -o '%P %N %G %c %T'; fi
  return "$all_up"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
