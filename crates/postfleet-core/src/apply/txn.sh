# Transactions (used by the apply script and by the recovery of an interrupted one): every
# file an instance step replaces is saved first, so a failed activation, or the next run
# after a killed one, can put the previous files back.
# The reload or restart the instance will owe once a live file is replaced is recorded in
# $PF_STATE/pending/NAME first, so an interrupted run leaves the debt for the next one.
pf_txn_begin() {  # CONFIG_DIR INSTANCE OWED(reload|restart|-)
  [ -z "$pf_failed" ] || return 0
  PF_TXN="$1/.postfleet-backup" PF_TXN_DIR=$1 PF_TXN_NAME=$2
  { ! [ -e "$PF_TXN" ] || rm -rf "$PF_TXN"; } && mkdir -m 700 "$PF_TXN" && : > "$PF_TXN/list"
  # A debt an earlier run left stays the instance's if this transaction is taken back.
  [ -f "$PF_STATE/pending/$2" ] && cp -p "$PF_STATE/pending/$2" "$PF_TXN/pending.before"
  [ "$3" = - ] || printf '%s %s\n' "$2" "$3" > "$PF_TXN/owed"
}
# Saves each PATH in the transaction before it is replaced, then makes the backups, the list,
# the owed debt and the FILEs given durable (one sync): after a power loss the rename that
# follows never exists without what puts it back.
pf_save() {  # PATH... -- [FILE...]
  pf_listed= pf_owed=
  if [ -n "$PF_TXN" ] && [ -f "$PF_TXN/owed" ]; then
    { read -r name owed < "$PF_TXN/owed"; } 2>/dev/null &&
      printf '%s\n' "$owed" > "$PF_STATE/pending/$name" || return 1
    pf_owed="$PF_STATE/pending/$name"
  fi
  # Each PATH is replaced by its backup's name in the arguments (the FILEs stay), or dropped.
  pf_paths=1
  for pf_arg in "$@"; do
    shift
    if [ -z "$pf_paths" ]; then set -- "$@" "$pf_arg"; continue; fi
    [ "$pf_arg" = -- ] && { pf_paths=; continue; }
    [ -n "$PF_TXN" ] || continue
    # Saved already? (read by the shell itself: no process per check)
    n=0 pf_known=
    while read -r _kind saved; do
      [ "$saved" = "$pf_arg" ] && { pf_known=1; break; }
      n=$((n + 1))
    done < "$PF_TXN/list"
    [ -z "$pf_known" ] || continue
    if [ -e "$pf_arg" ]; then
      cp -p "$pf_arg" "$PF_TXN/$n" || return 1
      printf 'k %s\n' "$pf_arg" >> "$PF_TXN/list"
      set -- "$@" "$PF_TXN/$n"
    else
      printf 'n %s\n' "$pf_arg" >> "$PF_TXN/list"
    fi
    pf_listed=1
  done
  [ -z "$pf_listed" ] || set -- "$@" "$PF_TXN/list"
  [ -z "$pf_owed" ] || set -- "$@" "$pf_owed"
  [ "$#" -eq 0 ] || sync "$@"
}
pf_restore() {  # CONFIG_DIR: put every saved file back, re-index restored tables
  [ -n "$PF_TXN" ] && [ -f "$PF_TXN/list" ] || return 0
  i=0
  while read -r kind path; do
    if [ "$kind" = k ]; then
      mv -f "$PF_TXN/$i" "$path"
    else  # created by this run: gone again, with any index made of it
      rm -f "$path" "$path.db" "$path.lmdb" "$path.cdb" "$path.dir" "$path.pag"
    fi
    i=$((i + 1))
  done < "$PF_TXN/list"
  [ -f "$PF_TXN/maps" ] && while read -r map; do postmap -c "$1" "$map" 2>/dev/null; done < "$PF_TXN/maps"
  return 0
}
pf_sync_dirs() {  # the directories of the files in the transaction's list
  set --
  while read -r _kind path; do set -- "$@" "${path%/*}"; done < "$PF_TXN/list"
  sync "$@" 2>/dev/null
}
pf_txn_end() {  # [PATH...]: removed too, after the transaction's backup (in this order)
  if [ -n "$PF_TXN" ]; then
    # The renames of this transaction survive a power loss: sync the directories they were
    # made in (one process for all).
    [ -s "$PF_TXN/list" ] && pf_sync_dirs
    # The commit: a backup without its list is only removed by a recovery, never put back.
    # One rm, its operands removed in order: the list first.
    set -- "$PF_TXN/list" "$PF_TXN" "$@"
  fi
  # The stage copy of the transaction's config files goes with it (pf_config_begin).
  [ -z "$PF_STAGE" ] || set -- "$@" "$PF_STAGE"
  PF_TXN= PF_STAGE=
  for pf_arg in "$@"; do
    shift
    [ -e "$pf_arg" ] && set -- "$@" "$pf_arg"
  done
  [ "$#" -eq 0 ] || rm -rf "$@"
}
# Closes the open transaction: kept when every step went well; else every file it replaced
# or created is put back, and the reload it recorded as owed is taken back with them.
pf_txn_close() {
  [ -n "$PF_TXN" ] || return 0
  if [ -n "$pf_failed" ]; then
    pf_restore "$PF_TXN_DIR"
    pf_undone="$pf_undone $PF_TXN_NAME "
    if [ -f "$PF_TXN/pending.before" ]; then
      mv -f "$PF_TXN/pending.before" "$PF_STATE/pending/$PF_TXN_NAME"
    else
      rm -f "$PF_STATE/pending/$PF_TXN_NAME"
    fi
  fi
  pf_txn_end
}
# Puts right what an apply killed half-way left (its caller holds the host's lock): every
# file a transaction still open replaced or created is put back as it was (tables
# re-indexed); the reload that apply recorded as owed stays owed (a reload of the whole old
# configuration is harmless, a missed one is not). Prints one line per thing done.
pf_recover() {  # CONFIG_DIR... -- LEFTOVER...
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    PF_TXN="$1/.postfleet-backup"
    if [ -f "$PF_TXN/list" ]; then  # not committed (see pf_txn_end)
      pf_restore "$1" || return 2
      printf 'put back the files it replaced in %s\n' "$1"
    fi
    rm -rf "$PF_TXN" || return 2
    shift
  done
  [ "$#" -gt 0 ] && shift
  for left in "$@"; do
    case "$left" in  # only what postfleet itself names so
      */.postfleet-stage|*.postfleet-??????)
        [ -e "$left" ] || continue  # a pattern that matched nothing
        rm -rf "$left" && printf 'removed %s\n' "$left" ;;
    esac
  done
  PF_TXN=
  # The host changed: a plan made from facts read before this is stale (see prelude.sh).
  { read -r pf_generation < "$PF_STATE/generation"; } 2>/dev/null || pf_generation=0
  printf '%s\n' "$((${pf_generation:-0} + 1))" > "$PF_STATE/generation.tmp" &&
    mv -f "$PF_STATE/generation.tmp" "$PF_STATE/generation"
}
