# postfleet logs: an instance's own log lines of the last SECONDS, at most LINES each.
# Arguments: UNIT_AWK (facts/unit-template.awk), SECONDS, LINES, then instance NAMES (none:
# every instance postmulti lists). Per instance: "@@inst NAME SOURCE" (its maillog_file, else
# journal:UNIT, the journal of the unit that runs it, else /var/log/mail.log), then its lines;
# an unknown name prints "@@missing NAME".
unit_awk=$1 seconds=$2 max_lines=$3; shift 3
listed=$(postmulti -l | awk '{print $1}')
known=" $(printf '%s\n' "$listed" | tr '\n' ' ') "
# shellcheck disable=SC2086
[ "$#" -gt 0 ] || set -- $listed
now=$(date +%s)
cut=$(date -d "@$((now - seconds))" +%m%d%H%M%S)
since="@$((now - seconds))"
# file lines: "Mon DD HH:MM:SS host tag[pid]: ..." (or ISO 8601); keep those at or after the cut
recent() {
  awk -v cut="$cut" 'BEGIN { split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", m, " "); for (i = 1; i <= 12; i++) mon[m[i]] = sprintf("%02d", i) }
    $1 ~ /^[0-9][0-9][0-9][0-9]-/ { k = substr($1, 6, 2) substr($1, 9, 2) substr($1, 12, 2) substr($1, 15, 2) substr($1, 18, 2); if (k >= cut) print; next }
    ($1 in mon) { split($3, t, ":"); k = mon[$1] sprintf("%02d", $2) t[1] t[2] substr(t[3], 1, 2); if (k >= cut) print }'
}
for i in "$@"; do
  case "$known" in *" $i "*) ;; *) echo "@@missing $i"; continue ;; esac
  tag=$(postmulti -i "$i" -x postconf -xh syslog_name)
  log=$(postmulti -i "$i" -x postconf -xh maillog_file)
  unit=
  if [ -z "$log" ] && [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then
    # The unit that runs it, by the rule of the facts probe (HostFacts::unit_for): the
    # default instance under postfix.service when that is a real service (not a oneshot
    # umbrella), else the unit the host's own postfix@.service maps it to.
    if [ "$i" = - ]; then
      main=$(systemctl show -p Type -p LoadState postfix.service 2>/dev/null | tr '\n' ' ')
      case "$main" in *LoadState=loaded*) case "$main" in *Type=oneshot*) ;; *) unit=postfix ;; esac ;; esac
    fi
    if [ -z "$unit" ]; then
      [ -n "${mapping+x}" ] || mapping=$(systemctl cat postfix@.service 2>/dev/null |
        PF_INSTANCES=$(postmulti -l | awk -v OFS='\t' '{print $1, $4}') awk "$unit_awk")
      unit=$(printf '%s\n' "$mapping" | awk -F'\t' -v i="$i" '$1 == "unitof" && $2 == i { print $3 }')
    fi
  fi
  if [ -n "$unit" ]; then
    echo "@@inst $i journal:$unit.service"
    journalctl -q --no-pager -o short-iso --since "$since" -u "$unit.service" | tail -n "$max_lines"
    continue
  fi
  [ -n "$log" ] || log=/var/log/mail.log
  echo "@@inst $i $log"
  [ -r "$log" ] && tail -n 50000 "$log" | grep -F " $tag/" | recent | tail -n "$max_lines"
done
exit 0
