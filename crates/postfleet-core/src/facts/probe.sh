# postfleet facts probe: reads, in one round trip, everything the planner needs.
# Arguments (set by the caller): the unit-mapping awk program (unit-template.awk), instance
# names to look at, then "--", then managed files as TYPE:PATH (TYPE "-" for files that are not
# lookup tables). Prints one record per line, tab-separated; free text is base64. Changes
# nothing on the host.
unit_awk=$1; shift
rec() { printf '%s\n' "$*"; }
# A record whose last field is FILE's content (base64), written straight out: no $(...)
# subshell per file.
rec_file() {  # FILE FIELD...
  pf_f=$1
  shift
  printf '%s\t' "$@"
  base64 -w0 < "$pf_f" 2>/dev/null
  echo
}
TAB='	'
NL='
'

wanted=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do wanted="$wanted $1"; shift; done
[ "$#" -gt 0 ] && shift

# How many applies this host has seen: the apply checks it under its lock (see prelude.sh).
{ read -r generation < "$PF_STATE/generation"; } 2>/dev/null || generation=0
rec "generation${TAB}${generation:-0}"
if ! command -v postconf >/dev/null 2>&1 || ! command -v postmulti >/dev/null 2>&1; then
  rec "postfix${TAB}missing"
  exit 0
fi
# The version is read with the default instance's directories (describe): one postconf.
version=

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemd=1  # the init record comes after the units (below)
else
  rec "init${TAB}other"
  systemd=0
fi

# Instances known to postmulti: name group enabled config_directory. The default instance is
# listed first, as "-"; an instance imported without a name is listed as "-" too: it is left
# out (named "nameless"), never taken for the default instance.
# (Lines are read by this shell from here-documents: no pipeline, no process.)
all_listed=$(postmulti -l 2>/dev/null)
listed= default_seen=
while read -r name group enabled dir; do
  [ -n "$name" ] || continue
  if [ "$name" = - ]; then
    [ -z "$default_seen" ] || { rec "nameless${TAB}$dir"; continue; }
    default_seen=1
  fi
  listed="$listed$name $group $enabled $dir$NL"
  rec "instance${TAB}$name${TAB}$group${TAB}$enabled${TAB}$dir"
done <<EOF
$all_listed
EOF

# Is an apply running on this host right now? (asked only when something it may own is
# found: what a running apply has open is not an interrupted apply's)
applying=
applying() {
  if [ -z "$applying" ]; then
    applying=no
    [ -e "$PF_STATE/lock" ] && ! flock -n "$PF_STATE/lock" true 2>/dev/null && applying=yes
  fi
  [ "$applying" = yes ]
}

describe() {  # NAME CONFIG_DIR
  name=$1; dir=$2
  # What an apply that was killed half-way leaves: its backup (the files it replaced, to be
  # put back before planning) and its scratch copy.
  [ -d "$dir/.postfleet-backup" ] && ! applying && rec "interrupted${TAB}$dir"
  [ -d "$dir/.postfleet-stage" ] && ! applying && rec "leftover${TAB}$dir/.postfleet-stage"
  [ -f "$dir/main.cf" ] && rec_file "$dir/main.cf" maincf "$name"
  [ -f "$dir/master.cf" ] && rec_file "$dir/master.cf" mastercf "$name"
  # Running or not, as `postfix status` says (through postmulti -x it is ~10 processes):
  # pf_master_runs (master_runs.sh).
  dirs=$(postconf -c "$dir" -h queue_directory daemon_directory mail_version 2>/dev/null)
  qdir=${dirs%%"$NL"*}; dirs=${dirs#*"$NL"}; ddir=${dirs%%"$NL"*}
  if [ -z "$version" ]; then version=${dirs#*"$NL"}; rec "version${TAB}$version"; fi
  if pf_master_runs "$qdir" "$ddir" "$dir"; then
    rec "running${TAB}$name${TAB}yes"
  else
    rec "running${TAB}$name${TAB}no"
  fi
  if [ -n "$qdir" ] && [ -d "$qdir" ]; then
    n=$(find "$qdir/incoming" "$qdir/active" "$qdir/deferred" "$qdir/hold" "$qdir/maildrop" -type f 2>/dev/null | wc -l)
    rec "queue${TAB}$name${TAB}$n"
  fi
  if [ -f "$PF_STATE/pending/$name" ]; then
    owed=; { read -r owed < "$PF_STATE/pending/$name"; } 2>/dev/null
    rec "pending${TAB}$name${TAB}$owed"
  fi
}

seen=" "
{
  while read -r name group enabled dir; do
    [ -n "$name" ] || continue
    describe "$name" "$dir"
    seen="$seen$name "
  done <<EOF
$listed
EOF
  for name in $wanted; do
    case "$seen" in *" $name "*) continue ;; esac
    # not listed: an unmanaged config dir may still exist (postmulti create would import it)
    [ "$name" = "-" ] && continue
    [ -d "/etc/$name" ] && rec "unlisted${TAB}$name${TAB}/etc/$name"
  done
  # No instance gave it (none listed, or its main.cf unreadable): the version on its own.
  [ -n "$version" ] || rec "version${TAB}$(postconf -h mail_version 2>/dev/null)"
}

if [ "$systemd" = 1 ]; then
  # Which template unit runs which instance, read from the host's own postfix@.service
  # (unit-template.awk, passed in as $unit_awk): every instance postmulti lists, and the
  # wanted ones at the config dir `postmulti -e create` will give them.
  # (Both lists are kept free of repeats by this shell: no sort.)
  pairs=$NL
  add_pair() { case $pairs in *"$NL$1$TAB$2$NL"*) ;; *) pairs="$pairs$1$TAB$2$NL" ;; esac; }
  while read -r name _group _enabled dir; do
    [ -n "$name" ] && add_pair "$name" "$dir"
  done <<EOF
$listed
EOF
  # (a listed instance's own config dir, never the one guessed for it: $seen, from describe)
  for name in $wanted; do
    case $seen in *" $name "*) continue ;; esac
    case "$name" in -) add_pair - /etc/postfix ;; *) add_pair "$name" "/etc/$name" ;; esac
  done
  mapping=$(systemctl cat postfix@.service 2>/dev/null | PF_INSTANCES=$pairs awk "$unit_awk")
  printf '%s\n' "$mapping"
  # Units asked about: the mapped ones, postfix@NAME for every instance (the unit another
  # release's naming gives it: an upgraded host may still have it enabled), postfix.service.
  units=" "
  add_unit() { case $units in *" $1 "*) ;; *) units="$units$1 " ;; esac; }
  while IFS=$TAB read -r kind _name unit; do
    [ "$kind" = unitof ] && add_unit "$unit.service"
  done <<EOF
$mapping
EOF
  while IFS=$TAB read -r name _dir; do
    [ -n "$name" ] && add_unit "postfix@$name.service"
  done <<EOF
$pairs
EOF
  # One call for every unit; blocks of key=value separated by blank lines.
  # shellcheck disable=SC2086
  systemctl show -p Id -p ActiveState -p UnitFileState -p Type -p LoadState \
    $units postfix.service 2>/dev/null |
  awk -F= -v OFS='\t' '
    function flush() {
      if (id != "") print "unit", id, act, (ufs == "" ? "-" : ufs), (type == "" ? "-" : type), load
      id = act = ufs = type = load = ""
    }
    /^$/ { flush(); next }
    $1 == "Id" { id = $2 } $1 == "ActiveState" { act = $2 } $1 == "UnitFileState" { ufs = $2 }
    $1 == "Type" { type = $2 } $1 == "LoadState" { load = $2 }
    END { flush() }'
  rec "init${TAB}systemd"
fi

for spec in "$@"; do
  type=${spec%%:*}; path=${spec#*:}
  # A temp file of pf_write's, left by an apply killed before its rename.
  for tmp in "$path".postfleet-??????; do [ -e "$tmp" ] && ! applying && rec "leftover${TAB}$tmp"; done
  if [ -f "$path" ]; then
    # (its mode written out by stat: the third field)
    printf 'file\t%s\t' "$path"
    stat --printf '%a' -- "$path" 2>/dev/null
    printf '\t'
    base64 -w0 < "$path" 2>/dev/null
    echo
    case "$type" in
      hash|btree) db="$path.db" ;;
      lmdb) db="$path.lmdb" ;;
      cdb) db="$path.cdb" ;;
      dbm|sdbm) db="$path.pag" ;;
      *) db="" ;;
    esac
    if [ -n "$db" ]; then
      if [ -e "$db" ] && ! [ "$path" -nt "$db" ]; then rec "mapfresh${TAB}$path${TAB}yes"; else rec "mapfresh${TAB}$path${TAB}no"; fi
    fi
  else
    rec "file${TAB}$path${TAB}missing"
  fi
done
# What the last apply left of each instance (drift is what changed since): line by line,
# read by this shell (records are tab-separated ASCII).
for applied in "$PF_STATE"/applied/*; do
  [ -f "$applied" ] || continue
  while IFS= read -r line || [ -n "$line" ]; do
    rec "applied${TAB}${applied##*/}${TAB}$line"
  done < "$applied"
done
rec "end"
