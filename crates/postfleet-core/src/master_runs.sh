# Does an instance's master run? `postfix status` decides with `master -t` (exit 0: the
# master.pid lock is free). The same verdict is read from /proc here, with no program run
# (a Postfix program costs a host some 10 ms of CPU): the PID in QUEUE/pid/master.pid is a
# process named master whose working directory is QUEUE (the master chdirs there; a stale
# PID now used by another process fails one or the other). When /proc cannot tell (no /proc,
# or a process this user may not look into), master -t. Without its queue or daemon
# directory an instance does not run, as with postfix status.
pf_master_runs() {  # QUEUE_DIR DAEMON_DIR CONFIG_DIR
  [ -n "$1" ] && [ -d "$1" ] && [ -x "$2/master" ] || return 1
  if [ -d /proc/self/fd ]; then
    [ -f "$1/pid/master.pid" ] || return 1
    pf_mpid=
    { read -r pf_mpid < "$1/pid/master.pid"; } 2>/dev/null
    case $pf_mpid in '' | *[!0-9]*) return 1 ;; esac
    pf_mcomm=
    { read -r pf_mcomm < "/proc/$pf_mpid/comm"; } 2>/dev/null || return 1
    [ "$pf_mcomm" = master ] || return 1
    [ "/proc/$pf_mpid/cwd" -ef "$1" ] && return 0
  fi
  ! "$2/master" -c "$3" -t >/dev/null 2>&1
}
