# Does an instance's master run? `postfix status` decides with `master -t` (exit 0: the
# master.pid lock is free). When /proc shows it, that verdict is had with no program run (a
# Postfix program costs a host some 10 ms of CPU): the PID in QUEUE/pid/master.pid is a
# process named master whose working directory is QUEUE (the master chdirs there). Anything
# else (no pid file yet, a stale or reused PID, no /proc, a process this user may not look
# into, a master in another PID namespace) is left to master -t itself. Without its queue or
# daemon directory an instance does not run, as with postfix status.
pf_master_runs() {  # QUEUE_DIR DAEMON_DIR CONFIG_DIR
  [ -n "$1" ] && [ -d "$1" ] && [ -x "$2/master" ] || return 1
  if [ -f "$1/pid/master.pid" ]; then
    pf_mpid= pf_mcomm=
    # (right-aligned in a fixed width: read with IFS blank strips the padding)
    { IFS=' ' read -r pf_mpid < "$1/pid/master.pid"; } 2>/dev/null
    case $pf_mpid in
      '' | *[!0-9]*) ;;
      *) { read -r pf_mcomm < "/proc/$pf_mpid/comm"; } 2>/dev/null &&
           [ "$pf_mcomm" = master ] && [ "/proc/$pf_mpid/cwd" -ef "$1" ] && return 0 ;;
    esac
  fi
  ! "$2/master" -c "$3" -t >/dev/null 2>&1
}
