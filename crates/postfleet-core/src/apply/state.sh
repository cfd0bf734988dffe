# Is $PF_STATE root's alone (the apply's and the recovery's first check)? Files are written
# there as root: a directory another user owns, or one others may write to, could hold their
# links. Not a symbolic link; not writable by others, nor by a group other than root's.
pf_state_ours() {
  [ -d "$PF_STATE" ] && [ -O "$PF_STATE" ] && ! [ -L "$PF_STATE" ] || return 1
  pf_perm=$(stat -c '%A %g' "$PF_STATE" 2>/dev/null) || return 1
  case $pf_perm in
    ????????w?' '*) return 1 ;;
    ?????w????' '0) return 0 ;;
    ?????w????' '*) return 1 ;;
  esac
  return 0
}
