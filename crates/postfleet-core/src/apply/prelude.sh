# postfleet apply: generated for one host. Each step prints one line
#   @@step INDEX ok|changed|failed BASE64(message)
# A failed step stops the run; steps not reached print nothing.
# A dropped connection must not kill the run half-way: ignore HUP and PIPE.
trap '' HUP PIPE
umask 022
PF_NL='
'
PF_CR=$(printf '\r')
pf_failed= pf_failed_at= pf_undone= pf_vcache= pf_vcache_vals= pf_vcache_services= pf_gate_services=
pf_b64() { printf '%s' "$1" | base64 -w0; }
# Every report line also goes to $PF_STATE/last-apply once this run holds the lock: if the
# connection drops, the run goes on (HUP and PIPE are ignored) and the controller reconnects
# and reads there what really happened.
pf_emit() {
  printf '%s\n' "$1"
  [ -z "$PF_RECORDING" ] || printf '%s\n' "$1" >> "$PF_STATE/last-apply"
}
pf_report() { pf_emit "@@step $1 $2 $(pf_b64 "$3")"; }
pf_report64() { pf_emit "@@step $1 $2 $3"; }  # message already base64
pf_fail() { pf_report "$1" failed "$2"; pf_failed=1; pf_failed_at=${pf_failed_at:-$1}; }
pf_fatal() { pf_emit "@@error $(pf_b64 "$1")"; exit 3; }

[ -d "$PF_STATE" ] || mkdir -p "$PF_STATE/pending" 2>/dev/null || pf_fatal "cannot create $PF_STATE on the host (read-only or full disk?)"
pf_state_ours ||
  pf_fatal "$PF_STATE on the host is not root's own directory, or others may write to it: postfleet will not write there (make it root's, mode 755)"
[ -d "$PF_STATE/pending" ] || mkdir "$PF_STATE/pending" 2>/dev/null || pf_fatal "cannot create $PF_STATE/pending on the host (read-only or full disk?)"
# One run at a time per host, whichever controller started it.
exec 9>"$PF_STATE/lock" || pf_fatal "cannot open $PF_STATE/lock"
flock -n 9 || pf_fatal "another postfleet run is applying changes to this host right now"
# The plan was made from facts read before this lock was taken: if another run applied in
# between, those facts are stale. Refuse (nothing done yet), else count this apply.
{ read -r pf_generation < "$PF_STATE/generation"; } 2>/dev/null || pf_generation=0
[ "${pf_generation:-0}" = "$PF_PLANNED_AT" ] ||
  pf_fatal "another postfleet run changed this host after its facts were read: nothing was done; run again to plan from what the host has now"
printf '%s\n' "$((${pf_generation:-0} + 1))" > "$PF_STATE/generation.tmp" &&
  mv -f "$PF_STATE/generation.tmp" "$PF_STATE/generation" || pf_fatal "cannot write $PF_STATE/generation"
printf '@@run %s\n' "$((${pf_generation:-0} + 1))" > "$PF_STATE/last-apply" && PF_RECORDING=1
# What pf_run collects: private (an error may quote a value of the configuration).
umask 077; true > "$PF_STATE/step.out" || pf_fatal "cannot write $PF_STATE/step.out"; umask 022

# postfix-script reports through postlog, which writes to stderr only on a terminal:
# give postmulti -p one, so its words reach the report. script(1) takes one command line:
# each argument goes into it quoted.
pf_tty() {  # CMD...
  if command -v script >/dev/null 2>&1; then
    pf_line=
    for pf_arg in "$@"; do pf_quote "$pf_arg"; pf_line="$pf_line $pf_q"; done
    pf_out=$(script -qec "$pf_line" /dev/null); pf_rc=$?
    printf '%s\n' "$pf_out" | tr -d '\r'
    return $pf_rc
  fi
  "$@"
}
# Sets pf_q to WORD quoted for sh (by the shell itself: no process per word).
pf_quote() {  # WORD
  pf_rest=$1 pf_q=
  while :; do
    case $pf_rest in
      *\'*) pf_q="$pf_q${pf_rest%%\'*}'\\''"; pf_rest=${pf_rest#*\'} ;;
      *) pf_q="'$pf_q$pf_rest'"; return 0 ;;
    esac
  done
}

# The parameters the health gate reads (pf_serves, gate.sh), its first two the directories
# pf_master_runs needs; one postconf reads them, or validation already has (pf_vcache).
PF_GATE_PARAMS='queue_directory daemon_directory inet_interfaces inet_protocols
  master_service_disable smtpd_tls_wrappermode smtpd_upstream_proxy_protocol
  postscreen_upstream_proxy_protocol'
# Is the instance's master process running? The same postconf reads the gate's parameters:
# left in pf_vals. Validation's values (pf_vcache, and master.cf's entries for pf_serves in
# pf_gate_services) serve one look only: the one right after the activation, never a later
# one (after a rollback the files are the old ones).
pf_running() {  # CONFIG_DIR
  pf_gate_services=
  if [ -n "$pf_vcache" ] && [ "$pf_vcache" = "$1" ]; then
    pf_vals=$pf_vcache_vals pf_gate_services=$pf_vcache_services pf_vcache=
  else
    # shellcheck disable=SC2086
    pf_vals=$(postconf -c "$1" -x -h $PF_GATE_PARAMS 2>/dev/null) || { pf_vals=; return 1; }
  fi
  # $(...) dropped the empty values at the end: one newline back for each value.
  pf_vals="$pf_vals$PF_NL$PF_NL$PF_NL$PF_NL$PF_NL$PF_NL$PF_NL$PF_NL"
  pf_queue=${pf_vals%%"$PF_NL"*}; pf_vals=${pf_vals#*"$PF_NL"}
  pf_daemons=${pf_vals%%"$PF_NL"*}; pf_vals=${pf_vals#*"$PF_NL"}
  pf_master_runs "$pf_queue" "$pf_daemons" "$1"
}

# What this apply leaves of an instance, for the next run to find drift with
# ($PF_STATE/applied/FILE): written only when every step of the instance went well (its last
# step, LAST, came before the first failure; -1: it had none) and its transaction was kept.
pf_applied() {  # NAME LAST FILE [TEXT]: without TEXT the instance keeps no record (destroyed)
  case $pf_undone in *" $1 "*) return 0 ;; esac
  [ -z "$pf_failed" ] || [ "$2" -lt "${pf_failed_at:-0}" ] || return 0
  if [ "$#" -lt 4 ]; then rm -f "$PF_STATE/applied/$3"; return 0; fi
  [ -d "$PF_STATE/applied" ] || mkdir -m 700 "$PF_STATE/applied" || return 0
  # Private (values of the config), whole when it gets its name.
  umask 077
  printf '%s' "$4" > "$PF_STATE/applied/.$3.tmp" && mv -f "$PF_STATE/applied/.$3.tmp" "$PF_STATE/applied/$3"
  umask 022
}

# Postfix programs pause before reading a main.cf changed within the last two seconds, in
# case it is still being written ("cool down": 300 ms naps, 2 s in all). Every main.cf here is
# whole when it gets its name (postconf and this script rename files into place), so a fresh
# one is dated two seconds back: validation, postmap, reload and start then read it at once.
# The reference is dated once per run, two seconds before the run began (pf_settle_begin):
# it is older still when used later. The files are re-dated by one touch.
# A reference that could not be dated now must not date files back to an older run's time.
pf_settle_begin() { touch -d '2 seconds ago' "$PF_STATE/two-seconds-ago" 2>/dev/null || rm -f "$PF_STATE/two-seconds-ago"; }
pf_settle() {  # FILE...
  pf_past="$PF_STATE/two-seconds-ago"
  [ -f "$pf_past" ] || return 0
  for f in "$@"; do
    shift
    [ -f "$f" ] && [ "$f" -nt "$pf_past" ] && set -- "$@" "$f"
  done
  [ "$#" -eq 0 ] || touch -c -m -r "$pf_past" "$@"
  return 0
}

# The last fatal/error lines Postfix logged for an instance (journal or mail log).
pf_why() {  # NAME UNIT
  if [ -n "$2" ] && command -v journalctl >/dev/null 2>&1; then
    journalctl --sync 2>/dev/null  # what journald has received is readable
    journalctl -u "$2" -n 30 --no-pager -o cat 2>/dev/null | grep -E 'fatal|error|panic' | tail -n 3
  fi
  log=$(postmulti -i "$1" -x postconf -h maillog_file 2>/dev/null)
  [ -n "$log" ] && [ -f "$log" ] && tail -n 50 "$log" | grep -E 'fatal|panic' | tail -n 4
}

pf_postmap() {  # CONFIG_DIR TYPE:PATH [MODE] (remembered so a rollback re-indexes the old source)
  postmap -c "$1" "$2" || return 1
  [ -n "$PF_TXN" ] && printf '%s\n' "$2" >> "$PF_TXN/maps"
  # The index holds what the table holds: it gets the table's mode (a table made secret
  # must not keep a world-readable index).
  if [ -n "$3" ]; then
    for idx in "${2#*:}.db" "${2#*:}.lmdb" "${2#*:}.cdb" "${2#*:}.dir" "${2#*:}.pag"; do
      [ -f "$idx" ] && { chmod "$3" "$idx" || return 1; }
    done
  fi
  return 0
}

# Atomic, private and durable write: a fresh temp file (created exclusively, never through a
# symlink), its final mode, its data on disk (synced), then the rename. The temp name is the
# controller's (PATH.postfleet-SUFFIX, what the probe and the recovery look for), made with
# noclobber (O_EXCL); should it exist, mktemp picks another. With a UMASK the file has its
# final mode from its first byte (a mode without execute or special bits), else mode 600 until
# its chmod. The data: `txt` is the text itself (written by the shell's printf), `b64` base64.
pf_write() {  # PATH MODE UMASK(- for chmod) SUFFIX txt|b64 DATA
  tmp="$1.postfleet-$4" pf_chmod=
  if [ "$3" = - ]; then umask 077; pf_chmod=1; else umask "$3"; fi
  if [ -e "$tmp" ] || [ -L "$tmp" ] || ! { set -C; true > "$tmp"; } 2>/dev/null; then
    set +C; umask 022
    tmp=$(mktemp "$1.postfleet-XXXXXX") || return 1
    pf_chmod=1
  fi
  set +C; umask 022
  if [ "$5" = txt ]; then printf '%s' "$6" > "$tmp"; else printf '%s' "$6" | base64 -d > "$tmp"; fi &&
    { [ -z "$pf_chmod" ] || chmod "$2" "$tmp"; } && pf_save "$1" -- "$tmp" &&
    mv -f "$tmp" "$1" && return 0
  rm -f "$tmp"
  return 1
}

# Stage main.cf and master.cf of an instance in a scratch copy of its config dir
# ($PF_STAGE, set by the caller, pf_config_begin).
# One cp for all (-H: a file named on the command line is copied, not its symlink).
pf_stage() {  # CONFIG_DIR
  pf_from=$1
  set --
  for f in main.cf master.cf dynamicmaps.cf; do [ -e "$pf_from/$f" ] && set -- "$@" "$pf_from/$f"; done
  [ -d "$pf_from/dynamicmaps.cf.d" ] && set -- "$@" "$pf_from/dynamicmaps.cf.d"
  if [ -e "$PF_STAGE" ] || [ -L "$PF_STAGE" ]; then rm -rf "$PF_STAGE" || return 1; fi
  mkdir -m 755 "$PF_STAGE" || return 1
  [ "$#" -eq 0 ] || cp -RpH "$@" "$PF_STAGE/"
}
# Sets pf_text to what FILE holds, its trailing newlines dropped, as $(cat FILE) would: read
# by the shell itself.
pf_slurp() {  # FILE
  pf_text=
  { while IFS= read -r pf_l || [ -n "$pf_l" ]; do pf_text="$pf_text$pf_l$PF_NL"; done < "$1"; } 2>/dev/null
  while :; do case $pf_text in *"$PF_NL") pf_text=${pf_text%"$PF_NL"} ;; *) break ;; esac; done
}
# Runs CMD... in this shell, where `out=$(CMD 2>&1)` would fork a subshell first (a shell
# function there costs the host a fork more than in this shell), its output into a private
# file: sets pf_out to what it printed, trailing newlines dropped as $(...) drops them, and
# empties the file (an error may quote a value). CMD must not call pf_run itself.
pf_run() {  # CMD...
  "$@" > "$PF_STATE/step.out" 2>&1
  pf_rc=$?
  pf_slurp "$PF_STATE/step.out"; pf_out=$pf_text
  true > "$PF_STATE/step.out"
  return "$pf_rc"
}
# postconf's complaints about the staged files are failures: nothing is moved into place.
# Any postconf that reads main.cf reads and checks master.cf too (it fails on every entry
# `postconf -M` fails on, and warns of the same unused parameters as `postconf -n`): the one
# here reads the gate's parameters, which are the live ones once the staged files are moved
# into place; left in pf_vcache_vals for this CONFIG_DIR's gate (pf_running). Sets pf_why
# when the staged files are refused.
pf_validate() {  # CONFIG_DIR
  pf_vdir=$1 pf_why=
  pf_settle "$PF_STAGE/main.cf"
  # Their complaints are collected in a file, read by this shell.
  pf_e="$PF_STATE/validate.err"
  umask 077; true > "$pf_e"; umask 022
  # shellcheck disable=SC2086
  pf_vvals=$(postconf -c "$PF_STAGE" -x -h $PF_GATE_PARAMS 2>"$pf_e")
  # (a warning may quote a parameter's value: the file does not stay)
  pf_slurp "$pf_e"; pf_verr=$pf_text; true > "$pf_e"
  # Both files' settings, comments left out: main.cf's `name = value` and master.cf's
  # `-o name=value` words are looked at, master.cf's entries kept for the gate. (By grep: the
  # shell's `read` takes a byte per system call, some 5 ms of CPU for a 10 kB master.cf.)
  pf_m=$(grep -sv '^[[:space:]]*#' "$PF_STAGE/main.cf")
  pf_mm=$(grep -sv '^[[:space:]]*#' "$PF_STAGE/master.cf")
  # Every TYPE:/PATH table main.cf or master.cf names whose source file exists must open (its
  # type supported, its index current): the tables of this run are in place already, main.cf
  # moves last. A table this transaction has just indexed with postmap opened then: not asked
  # again. (Tables a daemon creates at run time, e.g. a TLS session cache, have no source file
  # and are not looked at.) Words are split by the shell itself (blanks, commas, "=", and the
  # braces of a `-o {name=value with blanks}`), without globbing.
  pf_built=
  [ -n "$PF_TXN" ] && [ -f "$PF_TXN/maps" ] && pf_slurp "$PF_TXN/maps" && pf_built="$PF_NL$pf_text$PF_NL"
  pf_seen=$PF_NL
  # (a CR ends a word too: Postfix ignores blanks at a line's end, CR among them)
  set -f; pf_ifs=$IFS; IFS=" ,={}	$PF_NL$PF_CR"
  set --
  for pf_map in $pf_m $pf_mm; do
    case $pf_map in *:/*) ;; *) continue ;; esac
    pf_types=${pf_map%%:/*}
    case $pf_types in ''|:*|*:|*::*|*[!a-z0-9_:]*) continue ;; esac  # (TYPE:)+/PATH
    while :; do case $pf_map in proxy:*) pf_map=${pf_map#proxy:} ;; *) break ;; esac; done  # proxy:TYPE:/PATH
    case $pf_seen$pf_built in *"$PF_NL$pf_map$PF_NL"*) continue ;; esac
    pf_seen="$pf_seen$pf_map$PF_NL"
    [ -f "${pf_map##*:}" ] || continue
    set -- "$@" "$pf_map"
  done
  IFS=$pf_ifs; set +f
  # One postmap opens them all, and reads main.cf as every daemon does (a global parameter no
  # daemon would start with fails here): the static table answers last. A table that holds
  # the key answers first and the ones after it go unopened: then each is asked on its own.
  pf_hit=$(postmap -c "$PF_STAGE" -q postfleet-validate "$@" static:postfleet-validated 2>"$pf_e")
  pf_slurp "$pf_e"; true > "$pf_e"
  [ -z "$pf_text" ] || pf_verr="$pf_verr${pf_verr:+$PF_NL}$pf_text"
  if [ -z "$pf_text" ] && [ "$pf_hit" != postfleet-validated ]; then
    for pf_map in "$@"; do
      pf_vq=$(postmap -c "$PF_STAGE" -q postfleet-validate "$pf_map" 2>&1 >/dev/null)
      [ -z "$pf_vq" ] || pf_verr="$pf_verr${pf_verr:+$PF_NL}$pf_vq"
    done
  fi
  if [ -z "$pf_verr" ]; then
    # (values that name the scratch copy are not the live ones: the gate reads its own)
    case $pf_vvals in
      *"$PF_STAGE"*) ;;
      *) pf_entries "$pf_mm"  # (none when postconf must read them: the gate asks it)
         pf_vcache=$pf_vdir pf_vcache_vals=$pf_vvals pf_vcache_services=$pf_entries ;;
    esac
    return 0
  fi
  pf_why=$(printf '%s' "$pf_verr" | sed "s#$PF_STAGE#$pf_vdir#g")
  return 1
}
# main.cf and master.cf of one instance are staged in a scratch copy of its config dir, edited
# there as postconf would edit them (pf_staged_edit), validated together, then each moved into
# place.
pf_config_begin() {  # FIRST CONFIG_DIR (false: nothing to do, or staging failed)
  [ -z "$pf_failed" ] || return 1
  pf_vcache=
  # (the stage goes with the transaction, by its rm: pf_txn_end)
  PF_STAGE="$2/.postfleet-stage"
  pf_run pf_stage "$2" && return 0
  pf_fail "$1" "cannot stage $2: $pf_out"
  return 1
}
pf_stage_text() {  # FIRST FILE BASE64: the staged file's whole new text
  [ -z "$pf_failed" ] || return 0
  printf '%s' "$3" | base64 -d > "$PF_STAGE/$2" || pf_fail "$1" "cannot stage $2"
}
# The edits of `postconf -e` and `-X` (main.cf) and `-M` and `-MX` (master.cf), made on the
# staged files by one awk, as postconf makes them: a comment or blank line stays where it is;
# a parameter's every definition gets the new `name = value` line (-e) or goes with its
# continuation lines (-X); a service's first entry is replaced by the new one, later ones
# and removed ones go with their continuation lines; what was not found is added at the
# end. The controller gives the new lines as postconf writes them (main.cf parameters in
# postconf's order, master.cf entries folded as it folds them). (A postconf costs a host
# some 15 ms of CPU, most of it loading its libraries; an awk, one.)
# The arguments: DIR FILE EDIT... [-- FILE EDIT...], FILE main.cf or master.cf in DIR. Each
# edit is `s KEY TEXT` (set) or `x KEY` (remove); KEY is a parameter name or
# service/type. The files are written once all of them are read.
pf_edit_awk='
BEGIN {
  dir = ARGV[1]; f = 0; want = 1
  for (i = 2; i < ARGC; i++) {
    if (want) { files[++f] = ARGV[i]; want = 0; continue }
    if (ARGV[i] == "--") { want = 1; continue }
    key = ARGV[i + 1]; edit[f, key] = ARGV[i]
    if (ARGV[i] == "s") { text[f, key] = ARGV[i + 2]; order[f, ++n[f]] = key; i++ }
    i++
  }
  for (j = 1; j <= f; j++) { ARGV[j] = dir "/" files[j]; at[ARGV[j]] = j }
  ARGC = f + 1
}
FILENAME != name {
  name = FILENAME; j = at[name]; cur = 0
  kind = (files[j] == "master.cf") ? "master" : "main"
}
{
  rest = $0; sub(/^[ \t\r\f\v]+/, "", rest)
  if (rest == "" || substr(rest, 1, 1) == "#") { out[j, ++lines[j]] = $0; next }
  if (rest != $0) { if (!cur) out[j, ++lines[j]] = $0; next }
  if (kind == "main") { key = $0; sub(/[ \t\r=].*/, "", key) }
  else { split($0, w, /[ \t\r]+/); key = w[1] "/" w[2] }
  cur = (j, key) in edit
  if (!cur) { out[j, ++lines[j]] = $0; next }
  if (edit[j, key] == "s" && (kind == "main" || !((j, key) in done))) out[j, ++lines[j]] = text[j, key]
  done[j, key] = 1
}
END {
  for (j = 1; j <= f; j++) {
    for (k = 1; k <= n[j]; k++) if (!((j, order[j, k]) in done)) out[j, ++lines[j]] = text[j, order[j, k]]
    file = ARGV[j]
    printf "" > file
    for (k = 1; k <= lines[j]; k++) print out[j, k] > file
    if (close(file) != 0) exit 1
  }
}'
pf_staged_edit() {  # FIRST FILE EDIT... [-- FILE EDIT...]
  [ -z "$pf_failed" ] || return 0
  pf_i=$1
  shift
  out=$(awk "$pf_edit_awk" "$PF_STAGE" "$@" 2>&1) ||
    pf_fail "$pf_i" "cannot edit the staged files: $out"
}
pf_config_validate() {  # FIRST CONFIG_DIR (false: the staged files are refused)
  [ -z "$pf_failed" ] || return 1
  pf_validate "$2" && return 0
  pf_fail "$1" "Postfix rejects the new configuration; nothing was changed: $pf_why"
  return 1
}
# Moves the staged files that differ from the live ones into place, in the order given
# (master.cf first, see config_block): their backups are made durable by one sync before the
# renames. Reports each file's step changed, or ok when the file was in place already.
pf_config_moves() {  # CONFIG_DIR I MESSAGE64 FILE [I MESSAGE64 FILE]
  [ -z "$pf_failed" ] || return 0
  pf_cdir=$1
  shift
  set -- "$@" --
  while [ "$1" != -- ]; do
    if cmp -s "$PF_STAGE/$3" "$pf_cdir/$3"; then
      pf_report "$1" ok "already in place"
    else
      set -- "$@" "$1" "$2" "$3"
    fi
    shift 3
  done
  shift
  case $# in
    0) return 0 ;;
    3) pf_run pf_save "$pf_cdir/$3" -- "$PF_STAGE/$3" && pf_run mv -f "$PF_STAGE/$3" "$pf_cdir/$3" ;;
    # (one mv each: a mv of both would go on to the second file when the first fails)
    *) pf_run pf_save "$pf_cdir/$3" "$pf_cdir/$6" -- "$PF_STAGE/$3" "$PF_STAGE/$6" &&
         pf_run mv -f "$PF_STAGE/$3" "$pf_cdir/$3" && pf_run mv -f "$PF_STAGE/$6" "$pf_cdir/$6" ;;
  esac
  pf_moved=$?
  while [ "$#" -ge 3 ]; do
    if [ "$pf_moved" -ne 0 ] && [ -e "$PF_STAGE/$3" ]; then
      pf_fail "$1" "cannot move $3 into place: $pf_out"
      return 0
    fi
    pf_report64 "$1" changed "$2"
    shift 3
  done
}

# Steps. Each takes the step's index and its message (base64) first, does nothing once a step
# has failed, and reports the step changed, or failed with the command's own words.
pf_do() {  # I MESSAGE64 WHAT CMD...: CMD is a command or one of the functions below
  [ -z "$pf_failed" ] || return 0
  pf_i=$1 pf_msg=$2 pf_what=$3
  shift 3
  if pf_run "$@"; then pf_report64 "$pf_i" changed "$pf_msg"; else pf_fail "$pf_i" "$pf_what: $pf_out"; fi
}
# postmulti -e rewrites main.cf files: pf_settle them for the next Postfix program to read.
pf_init() {  # DEFAULT_CONFIG_DIR
  postmulti -e init && pf_settle "$1/main.cf"
}
pf_create() {  # NAME GROUP('' for none) DEFAULT_CONFIG_DIR CONFIG_DIR
  # postmulti records the new instance in the default instance's main.cf too.
  if [ -n "$2" ]; then postmulti -I "$1" -G "$2" -e create; else postmulti -I "$1" -e create; fi &&
    pf_settle "$3/main.cf" "$4/main.cf"
}
pf_set_enabled() {  # NAME enable|disable CONFIG_DIR
  postmulti -i "$1" -e "$2" && pf_settle "$3/main.cf"
}
pf_disable_stale() {  # UNIT
  # --now: should it run after all, stop it; reset-failed: forget its failed boots.
  systemctl disable --now "$1" && { systemctl reset-failed "$1" 2>/dev/null || :; }
}
pf_destroy() {  # NAME: the reload it was owed goes with it
  postmulti -i "$1" -e destroy && rm -f "$PF_STATE/pending/$1"
}
pf_write_step() {  # I MESSAGE64 PATH MODE UMASK SUFFIX txt|b64 DATA [CONFIG_DIR TYPE:PATH]: write, then index
  [ -z "$pf_failed" ] || return 0
  pf_vcache=  # (a file step may write any file)
  if ! pf_run pf_write "$3" "$4" "$5" "$6" "$7" "$8"; then
    pf_fail "$1" "cannot write $3: $pf_out"
  elif [ -n "$9" ] && ! pf_run pf_postmap "$9" "${10}" "$4"; then
    pf_fail "$1" "postmap: $pf_out"
  else
    pf_report64 "$1" changed "$2"
  fi
}
pf_stop() {  # I MESSAGE64 NAME CONFIG_DIR UNIT('' without systemd)
  [ -z "$pf_failed" ] || return 0
  if [ -n "$5" ]; then
    # A master started by hand is not the unit's: stop it with postmulti too.
    out=$( { systemctl stop "$5"; ! pf_running "$4" || postmulti -i "$3" -p stop; } 2>&1)
  else
    out=$(pf_tty postmulti -i "$3" -p stop 2>&1)
  fi
  if pf_running "$4"; then
    pf_fail "$1" "still running after stop: $out"
  else
    rm -f "$PF_STATE/pending/$3"
    pf_report64 "$1" changed "$2"
  fi
}
pf_activation() {  # start|reload|restart NAME CONFIG_DIR UNIT('' without systemd)
  if [ -n "$4" ]; then
    systemctl "$1" "$4" && return 0
    # A deliberate start is not a crash loop: systemd's start limit (by default five starts
    # in ten seconds, e.g. a few applies in a row that each restart) must not leave the
    # instance stopped. Retried once, after clearing the limit, only when that was the cause.
    [ "$1" != reload ] && [ "$(systemctl show -p Result --value "$4" 2>/dev/null)" = start-limit-hit ] ||
      return 1
    systemctl reset-failed "$4" && systemctl "$1" "$4"
  elif [ "$1" = restart ]; then
    # (validation's values are kept for the look after the restart: pf_running takes them)
    pf_kept=$pf_vcache
    pf_running "$3"
    pf_was=$? pf_vcache=$pf_kept
    { [ "$pf_was" -ne 0 ] || pf_tty postmulti -i "$2" -p stop; } && pf_tty postmulti -i "$2" -p start
  else
    pf_tty postmulti -i "$2" -p "$1"
  fi
}
# pf_serves with pf_activate's arguments: its config dir, then its checks.
pf_serves_checks() { pf_dir=$5; shift 6; pf_serves "$pf_dir" "$@"; }
# Start, reload or restart; verify the master runs and the instance passes its health gate;
# else put the previous files back, activate those, gate them again, and report Postfix's own
# words and what the gate saw.
pf_activate() {  # I MESSAGE64 start|reload|restart NAME CONFIG_DIR UNIT('' without systemd) [CHECK...]
  [ -z "$pf_failed" ] || return 0
  # (pf_running's first look reads the gate's parameters from validation, pf_vcache)
  if pf_run pf_activation "$3" "$4" "$5" "$6" && pf_running "$5" &&
    { pf_run pf_serves_checks "$@" || { pf_out="the instance does not serve: $pf_out"; false; }; }; then
    # The transaction commits before the debt goes: a kill in between costs one more reload.
    pf_txn_end "$PF_STATE/pending/$4"
    pf_report64 "$1" changed "$2"
    return 0
  fi
  out=$pf_out
  pf_vcache=  # (still set when the activation itself failed)
  why=$(pf_why "$4" "$6")
  if [ -n "$PF_TXN" ] && [ -s "$PF_TXN/list" ]; then
    pf_restore "$5"
    if [ "$3" = reload ]; then
      # After a failed reload the master may be gone: bring the old files up with a start.
      recover=$( { pf_running "$5" && pf_activation reload "$4" "$5" "$6" || pf_activation start "$4" "$5" "$6"; } 2>&1)
    else
      recover=$(pf_activation restart "$4" "$5" "$6" 2>&1)
    fi
    # The previous files are judged by the gate alone: the playbook's checks are the new ones'.
    if regate=$(pf_gate "$5" 2>&1); then
      rm -f "$PF_STATE/pending/$4"
      state="rolled back to the previous configuration; the instance is serving"
    elif pf_running "$5"; then
      state="rolled back to the previous configuration; the instance runs but does not serve: $regate"
    else
      state="rolled back to the previous configuration, but the instance is NOT running: $recover"
    fi
    pf_txn_end
  elif pf_running "$5"; then
    state="no previous configuration to roll back to; the instance runs but does not serve"
  else
    state="the instance is not running"
  fi
  pf_fail "$1" "$3 failed: $out $why$PF_NL$state"
}
