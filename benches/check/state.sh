# The end state the benchmark compares after every run, on one host, normalized so that every
# host of any lab prints the same text: the host's name becomes HOST, the lab's name LAB and the
# gateway address GATEWAY. Read-only.
#
# Usage: ssh root@HOST sh -s -- INVENTORY_HOSTNAME LAB GATEWAY < state.sh
set -u
export LC_ALL=C
PATH=/usr/sbin:/usr/bin:/sbin:/bin
name=$1
lab=$2
gateway=$(printf '%s' "$3" | sed 's/\./\\./g')
news=/etc/postfix-newsletter

{
  echo "== instances (postmulti -l)"
  postmulti -l | tr -s ' \t' '  '
  for dir in /etc/postfix "$news"; do
    echo "== $dir: postconf -n"
    postconf -c "$dir" -n
    echo "== $dir: postconf -M"
    postconf -c "$dir" -M | tr -s ' \t' '  '
    echo "== $dir: master"
    if postfix -c "$dir" status >/dev/null 2>&1; then echo running; else echo "not running"; fi
  done
  for table in /etc/postfix/transport /etc/postfix/newsletter_senders "$news/transport"; do
    echo "== $table (mode $(stat -c %a "$table"))"
    cat "$table"
    echo "== $table.db (postmap -s, sorted)"
    postmap -s "hash:$table" | sort
  done
  echo "== units (is-enabled, is-active)"
  for unit in postfix@- postfix@postfix-newsletter; do
    echo "$unit $(systemctl is-enabled "$unit") $(systemctl is-active "$unit")"
  done
} 2>&1 | sed -e "s/\\b$name\\b/HOST/g" -e "s/\\.$lab\\.test\\b/.LAB.test/g" -e "s/$gateway/GATEWAY/g"
