# The "floor" of the benchmark: what a careful admin would write by hand to reach the end state
# of playbooks/newsletter.yml (default vars) on one Debian 12 host, idempotently. It checks
# before it acts, so a second run changes nothing; it reloads or starts only what changed.
# No validation, no rollback, no report: the remote work and nothing else.
#
# It knows one Postfix trick, as postfleet does: Postfix programs pause up to two seconds before
# reading a main.cf changed within the last two seconds ("cool down"), so each main.cf this
# script has just had rewritten (postconf and postmulti rename complete files into place) is
# dated two seconds back. Without that, a first run takes about 14 s per host instead of ~6 s.
#
# Usage (one ssh per host): ssh root@HOST sh -s -- GATEWAY INVENTORY_HOSTNAME < newsletter.sh
# GATEWAY is the lab gateway (the relays' address), INVENTORY_HOSTNAME the host's name in the
# inventory (newsletter.NAME.invalid is the newsletter instance's myhostname).
set -u
export LC_ALL=C
PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022
gw=$1
name=$2
news=postfix-newsletter
news_dir=/etc/postfix-newsletter
throttled="orange.fr wanadoo.fr free.fr hotmail.com hotmail.fr live.com yahoo.com"
reload_default=
restart_news=

settle() {  # MAIN_CF...
  past=$(( $(date +%s) - 2 ))
  for f in "$@"; do
    [ "$(stat -c %Y "$f")" -gt "$past" ] && touch -m -d "@$past" "$f"
  done
  return 0
}

# set_params DIR NAME=VALUE...: one postconf -e when any value differs from `postconf -n`.
set_params() {
  dir=$1; shift
  current=$(postconf -c "$dir" -n)
  for kv in "$@"; do
    want="${kv%%=*} = ${kv#*=}"
    [ -n "${kv#*=}" ] || want="${kv%%=*} ="
    if ! printf '%s\n' "$current" | grep -qxF "$want"; then
      postconf -c "$dir" -e "$@" && settle "$dir/main.cf"
      return 0
    fi
  done
  return 1
}

# set_service DIR SERVICE/TYPE ENTRY: replaces the master.cf entry when it differs.
set_service() {
  have=$(postconf -c "$1" -M "$2" 2>/dev/null | tr -s ' \t' '  ')
  [ "$have" = "$3" ] && return 1
  postconf -c "$1" -M "$2=$3"
}

# put_table DIR PATH: stdin becomes PATH (mode 644) when it differs; postmap when needed.
put_table() {
  tmp="$2.floor-tmp"
  cat > "$tmp"
  if cmp -s "$tmp" "$2"; then
    rm -f "$tmp"
    [ -e "$2.db" ] && ! [ "$2" -nt "$2.db" ] && return 1
  else
    chmod 644 "$tmp" && mv -f "$tmp" "$2"
  fi
  postmap -c "$1" "hash:$2"
}

transport() {  # INSTANCE_WORDS ROUTE_WORDS NEXT_HOP
  printf '# Managed by postfleet (playbooks/newsletter.yml): throttled destinations of the\n'
  printf '# %s instance, over the %s.\n' "$1" "$2"
  for domain in $throttled; do printf '%s\tthrottled:%s\n' "$domain" "$3"; done
}

# --- default instance
if [ "$(postconf -h multi_instance_enable)" != yes ]; then
  postmulti -e init && settle /etc/postfix/main.cf
  reload_default=1
fi
set_params /etc/postfix \
  "relayhost=[$gw]:2525" \
  "transport_maps=hash:/etc/postfix/transport" \
  "smtpd_sender_restrictions=check_sender_access hash:/etc/postfix/newsletter_senders" \
  "throttled_destination_concurrency_limit=2" \
  "throttled_destination_rate_delay=1s" \
  "throttled_destination_concurrency_failed_cohort_limit=10" && reload_default=1
set_service /etc/postfix throttled/unix \
  "throttled unix - - - - - smtp -o syslog_name=postfix/throttled" && reload_default=1
transport default "normal relay" "[$gw]:2525" | put_table /etc/postfix /etc/postfix/transport
{
  printf '# Managed by postfleet (playbooks/newsletter.yml): mail from the newsletter domain goes,\n'
  printf '# every recipient of it, to the newsletter instance. FILTER wins over transport_maps,\n'
  printf '# which is what sender-dependent routing alone cannot do in one instance.\n'
  printf 'example.org\tFILTER smtp:[127.0.0.1]:2526\n'
} | put_table /etc/postfix /etc/postfix/newsletter_senders
[ -n "$reload_default" ] && systemctl reload postfix@-

# --- newsletter instance
created=
if ! postmulti -l | grep -q "^$news "; then
  postmulti -I "$news" -e create && settle /etc/postfix/main.cf "$news_dir/main.cf"
  created=1
fi
set_params "$news_dir" \
  "myhostname=newsletter.$name.invalid" \
  "master_service_disable=" \
  "inet_interfaces=loopback-only" \
  "mynetworks=127.0.0.0/8" \
  "relayhost=[$gw]:2527" \
  "transport_maps=hash:$news_dir/transport" \
  "throttled_destination_concurrency_limit=1" \
  "throttled_destination_rate_delay=2s" \
  "throttled_destination_concurrency_failed_cohort_limit=10" \
  "maillog_file=/var/log/mail.log" && restart_news=1
if [ -n "$(postconf -c "$news_dir" -M smtp/inet 2>/dev/null)" ]; then
  postconf -c "$news_dir" -MX smtp/inet
  restart_news=1
fi
set_service "$news_dir" 127.0.0.1:2526/inet "127.0.0.1:2526 inet n - - - - smtpd" && restart_news=1
set_service "$news_dir" throttled/unix \
  "throttled unix - - - - - smtp -o syslog_name=postfix-newsletter/throttled" && restart_news=1
transport newsletter "newsletter route" "[$gw]:2527" | put_table "$news_dir" "$news_dir/transport"
if ! postmulti -l | grep -q "^$news .* y "; then
  postmulti -i "$news" -e enable && settle "$news_dir/main.cf"
fi
# `systemctl enable` reloads systemd itself: a daemon-reload only when it is not needed.
if [ "$(systemctl is-enabled "postfix@$news")" != enabled ]; then
  systemctl enable -q "postfix@$news"
elif [ -n "$created" ]; then
  systemctl daemon-reload
fi
if ! systemctl is-active -q "postfix@$news"; then
  systemctl start "postfix@$news"
elif [ -n "$restart_news" ]; then
  # inet_interfaces and listeners change: a restart, not a reload
  systemctl restart "postfix@$news"
fi
