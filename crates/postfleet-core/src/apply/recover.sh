# postfleet recovery: an apply was killed half-way (its shell and the supervisor that would
# have put things right at once, see guard.sh) and left a transaction open. Arguments: config
# dirs whose backup is still there, "--", the leftovers the probe saw. Run under the host's
# lock, so the next plan starts from a whole previous configuration.
pf_state_ours ||
  { echo "$PF_STATE is not root's own directory, or others may write to it: postfleet will not write there" >&2; exit 3; }
exec 9>"$PF_STATE/lock" || { echo "cannot open $PF_STATE/lock" >&2; exit 3; }
# A run applying right now owns what it has open: nothing to recover (and nothing said).
flock -n 9 || exit 0
pf_recover "$@" || exit 2
