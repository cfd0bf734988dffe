# postfleet queue: one ACTION on the queues of the named instances (none named: every
# instance postmulti lists). Arguments: ACTION (list|count|flush|purge), then NAMES.
# Prints per instance: list "@@inst NAME" then its `postqueue -j` lines; count and flush
# "@@count NAME N" (messages queued); purge "@@count NAME N" (messages deleted). An unknown
# name prints "@@missing NAME"; a failed postqueue/postsuper "@@error BASE64(output)", exit 1.
action=$1; shift
listed=$(postmulti -l | awk '{print $1}')
known=" $(printf '%s\n' "$listed" | tr '\n' ' ') "
# shellcheck disable=SC2086
[ "$#" -gt 0 ] || set -- $listed
for i in "$@"; do
  case "$known" in *" $i "*) ;; *) echo "@@missing $i"; continue ;; esac
  case "$action" in
    list)
      echo "@@inst $i"
      postmulti -i "$i" -x postqueue -j ;;
    count)
      echo "@@count $i $(postmulti -i "$i" -x postqueue -j | wc -l)" ;;
    flush)
      echo "@@count $i $(postmulti -i "$i" -x postqueue -j | wc -l)"
      out=$(postmulti -i "$i" -x postqueue -f 2>&1) || { echo "@@error $(printf '%s' "$out" | base64 -w0)"; exit 1; } ;;
    purge)
      out=$(postmulti -i "$i" -x postsuper -d ALL 2>&1) || { echo "@@error $(printf '%s' "$out" | base64 -w0)"; exit 1; }
      n=$(printf '%s\n' "$out" | sed -n 's/.*Deleted: \([0-9]*\) message.*/\1/p' | tail -n 1)
      echo "@@count $i ${n:-0}" ;;
  esac
done
