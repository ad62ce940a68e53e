#!/usr/bin/env bash
# A throwaway single-node Slurm cluster on localhost, for the `slurm` tests (root, no systemd, no cgroups).
#
#   bash tests/slurm/cluster.sh up       install Debian's slurm-wlm packages if missing, write slurm.conf for
#                                        this machine (its real CPUs and memory), start munged, slurmctld and
#                                        slurmd, wait until `sinfo` shows the node idle
#   bash tests/slurm/cluster.sh down     stop the daemons this script started (by their pidfiles), forget jobs
#   bash tests/slurm/cluster.sh status   exit 0 when the cluster answers `sinfo` with an idle/allocated node
#
# Every failure exits non-zero with a message: CI must never mistake "no cluster" for "tests skipped".
# Environment: FTUI_SLURM_WAIT (seconds to wait for the node, default 60).
set -euo pipefail

RUN=/run/slurm
SPOOL=/var/spool/slurm
LOG=/var/log/slurm
CONF=/etc/slurm
WAIT=${FTUI_SLURM_WAIT:-60}
PACKAGES=(slurmctld slurmd slurm-client munge)

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"; }

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds
  local tries=$(( $1 * 5 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    tries=$(( tries - 1 ))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.2
  done
}

stop_pidfile() {  # stop exactly the daemon named in a pidfile; SIGKILL after 10 s
  local file=$1 pid i
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

install() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "Slurm is not installed and apt-get is missing (need: ${missing[*]})"
  echo "cluster.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)  # MB, leave 10 % to the system
  mkdir -p "$CONF" "$RUN" "$SPOOL/ctld" "$SPOOL/d" "$LOG"
  # Slurm keeps to loopback: the controller and the node are addressed as 127.0.0.1 whatever the hostname
  # resolves to. No accounting database: `sacct -c` reads the job completion log instead.
  cat > "$CONF/slurm.conf.tmp" <<EOC
# Written by ftui's tests/slurm/cluster.sh: a single-node test cluster on localhost.
ClusterName=ftui-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobCompType=jobcomp/filetxt
JobCompLoc=$SPOOL/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
DefMemPerCPU=1024
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOC
  mv "$CONF/slurm.conf.tmp" "$CONF/slurm.conf"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# sinfo retries for about 9 s when no controller listens: ask it only when our slurmctld runs (or, for a
# cluster this script did not start, when slurmctld answers within 5 s).
node_ready() {
  alive "$RUN/slurmctld.pid" || pgrep -x slurmctld >/dev/null || return 1
  timeout 5 sinfo -h -o %T 2>/dev/null | grep -Eqx 'idle|mixed|allocated'
}

up() {
  need_root
  if node_ready; then echo "cluster.sh: already up"; sinfo; return 0; fi
  install
  write_conf
  [ -s /etc/munge/munge.key ] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || die "munged did not start"
    wait_for 10 munged munge -n || die "munged does not answer (munge -n)"
  fi
  alive "$RUN/slurmctld.pid" || slurmctld || die "slurmctld did not start; see $LOG/slurmctld.log"
  alive "$RUN/slurmd.pid" || slurmd || die "slurmd did not start; see $LOG/slurmd.log"
  if ! wait_for "$WAIT" node node_ready; then
    tail -n 20 "$LOG/slurmctld.log" "$LOG/slurmd.log" >&2 || true
    die "the node is not idle after ${WAIT} s (sinfo: $(sinfo -h 2>&1 | head -n 3))"
  fi
  sinfo
}

down() {
  need_root
  stop_pidfile "$RUN/slurmd.pid"
  stop_pidfile "$RUN/slurmctld.pid"
  stop_pidfile /run/munge/munged.pid
  rm -rf "${SPOOL:?}/ctld/"* "${SPOOL:?}/d/"* "$SPOOL/jobcomp.log"  # the next `up` starts at job id 1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) node_ready || die "no cluster answers sinfo"; sinfo ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
