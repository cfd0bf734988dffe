# The supervisor of an apply. The steps ran above in a session of their own (setsid), so
# what kills their shell and its process group, as a shell is usually killed, leaves this
# shell alive: if the steps ended with a transaction still open (killed half-way through an
# instance), the files it replaced are put back now, under the host's lock, instead of at the
# next run, and the instance is left with its whole previous configuration, not a mix.

pf_any_open() {  # CONFIG_DIR...: is a transaction of one of them still open?
  for pf_dir in "$@"; do
    [ -f "$pf_dir/.postfleet-backup/list" ] && return 0
  done
  return 1
}
# Put back, then say so, to the controller and in the host's record of this apply (a
# controller that lost the connection reads it there).
pf_put_back() {  # CONFIG_DIR... -- PATH...: the apply's instance dirs, the files it writes
  # What the killed steps may have left besides: each dir's stage copy, each write's temp
  # file. Added after the arguments; pf_recover removes only what postfleet names so.
  pf_past=
  for pf_arg in "$@"; do
    if [ "$pf_arg" = -- ]; then
      pf_past=1
    elif [ -z "$pf_past" ]; then
      set -- "$@" "$pf_arg/.postfleet-stage"
    else
      for pf_tmp in "$pf_arg".postfleet-??????; do set -- "$@" "$pf_tmp"; done
    fi
  done
  pf_done=$(pf_recover "$@" | grep -v '^removed ' | tr '\n' ';')
  pf_line="@@error $(printf 'the apply was killed on the host before it finished (its shell ended with status %s); %s run postfleet again' \
    "$pf_rc" "$pf_done" | base64 -w0)"
  printf '%s\n' "$pf_line"
  printf '%s\n' "$pf_line" >> "$PF_STATE/last-apply"
  exit 3
}
