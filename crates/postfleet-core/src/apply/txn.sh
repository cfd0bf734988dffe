# Transactions (used by the apply script and by the recovery of an interrupted one).
# Transactions: every file an instance step replaces is saved first, so a failed
# activation can put the previous files back.
# The reload or restart the instance will owe once a live file is replaced is recorded in
# $PF_STATE/pending/NAME first, so an interrupted run leaves the debt for the next one.
pf_txn_begin() {  # CONFIG_DIR INSTANCE OWED(reload|restart|-)
  [ -z "$pf_failed" ] || return 0
  PF_TXN="$1/.postfleet-backup" PF_TXN_DIR=$1 PF_TXN_NAME=$2
  rm -rf "$PF_TXN" && mkdir -m 700 "$PF_TXN" && : > "$PF_TXN/list"
  # A debt an earlier run left stays the instance's if this transaction is taken back.
  [ -f "$PF_STATE/pending/$2" ] && cp -p "$PF_STATE/pending/$2" "$PF_TXN/pending.before"
  [ "$3" = - ] || printf '%s %s\n' "$2" "$3" > "$PF_TXN/owed"
}
pf_save() {  # PATH
  [ -n "$PF_TXN" ] || return 0
  if [ -f "$PF_TXN/owed" ]; then
    read -r name owed < "$PF_TXN/owed" && printf '%s\n' "$owed" > "$PF_STATE/pending/$name" || return 1
  fi
  # Saved already? (read by the shell itself: no process per check)
  n=0
  while read -r _kind saved; do
    [ "$saved" = "$1" ] && return 0
    n=$((n + 1))
  done < "$PF_TXN/list"
  if [ -e "$1" ]; then
    cp -p "$1" "$PF_TXN/$n" || return 1
    printf 'k %s\n' "$1" >> "$PF_TXN/list"
  else
    printf 'n %s\n' "$1" >> "$PF_TXN/list"
  fi
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
pf_txn_end() {
  if [ -n "$PF_TXN" ]; then
    # The renames of this transaction survive a power loss: sync the directories they were
    # made in (one process for all).
    if [ -s "$PF_TXN/list" ]; then
      set --
      while read -r _kind path; do set -- "$@" "${path%/*}"; done < "$PF_TXN/list"
      sync "$@" 2>/dev/null
    fi
    rm -rf "$PF_TXN"
  fi
  PF_TXN=
}
# Closes the open transaction: kept when every step went well; else every file it replaced
# or created is put back, and the reload it recorded as owed is taken back with them.
pf_txn_close() {
  [ -n "$PF_TXN" ] || return 0
  if [ -n "$pf_failed" ]; then
    pf_restore "$PF_TXN_DIR"
    if [ -f "$PF_TXN/pending.before" ]; then
      mv -f "$PF_TXN/pending.before" "$PF_STATE/pending/$PF_TXN_NAME"
    else
      rm -f "$PF_STATE/pending/$PF_TXN_NAME"
    fi
  fi
  pf_txn_end
}
