# postfleet recovery: an apply was killed half-way (its shell, not just its connection) and
# left a transaction open. Arguments: config dirs whose backup is still there, "--", the
# leftovers the probe saw. Under the host's lock, every file that apply replaced or created
# is put back as it was (tables re-indexed), so the next plan starts from a whole previous
# configuration; the reload that apply recorded as owed stays owed. Prints what it did.
exec 9>"$PF_STATE/lock" || { echo "cannot open $PF_STATE/lock" >&2; exit 3; }
# A run applying right now owns what it has open: nothing to recover (and nothing said).
flock -n 9 || exit 0
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  PF_TXN="$1/.postfleet-backup"
  if [ -f "$PF_TXN/list" ]; then  # not committed (see pf_txn_end)
    pf_restore "$1" || exit 2
    printf 'put back the files it replaced in %s\n' "$1"
  fi
  rm -rf "$PF_TXN" || exit 2
  shift
done
[ "$#" -gt 0 ] && shift
for left in "$@"; do
  case "$left" in  # only what postfleet itself names so
    */.postfleet-stage|*.postfleet-??????) rm -rf "$left" && printf 'removed %s\n' "$left" ;;
  esac
done
# The host changed: a plan made from facts read before this is stale (see prelude.sh).
{ read -r pf_generation < "$PF_STATE/generation"; } 2>/dev/null || pf_generation=0
printf '%s\n' "$((${pf_generation:-0} + 1))" > "$PF_STATE/generation.tmp" &&
  mv -f "$PF_STATE/generation.tmp" "$PF_STATE/generation"
