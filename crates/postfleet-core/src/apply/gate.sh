# The health gate: an instance that was started, reloaded or restarted serves. Its master
# runs, and every inet listener of its master.cf accepts a TCP connection (within 10 s: a
# master just started binds them first) and, for smtpd and postscreen, answers with an SMTP
# 220 greeting (within 30 s). Prints what it saw of the first listener that does not.
pf_gate() {  # CONFIG_DIR [CHECK...]
  pf_running "$1" || { echo "its master process is not running"; return 1; }
  pf_serves "$@"
}
# The gate once the master is known to run: pf_running has just read pf_vals.
pf_serves() {  # CONFIG_DIR [CHECK...]
  # Values as Postfix uses them ($name expanded), read with the master's state by the
  # pf_running just before (one per line, in its order). master_service_disable turns
  # listeners off that master.cf still lists (e.g. "inet"). A listener that speaks TLS first
  # (wrapper mode) or expects a PROXY header is checked for accepting the connection only: a
  # plain SMTP client gets no greeting from it, by design.
  pf_where=${pf_vals%%"$PF_NL"*}; pf_vals=${pf_vals#*"$PF_NL"}
  pf_v6only=; [ "${pf_vals%%"$PF_NL"*}" = ipv6 ] && pf_v6only=1; pf_vals=${pf_vals#*"$PF_NL"}
  pf_off=${pf_vals%%"$PF_NL"*}; pf_vals=${pf_vals#*"$PF_NL"}
  pf_wrap=${pf_vals%%"$PF_NL"*}; pf_vals=${pf_vals#*"$PF_NL"}
  pf_proxy=${pf_vals%%"$PF_NL"*}; pf_vals=${pf_vals#*"$PF_NL"}
  pf_psproxy=${pf_vals%%"$PF_NL"*}
  # "a, b c" -> " a  b c ": commas are separators too.
  pf_list=$pf_off pf_off=" "
  while :; do
    case $pf_list in
      *,*) pf_off="$pf_off${pf_list%%,*} "; pf_list=${pf_list#*,} ;;
      *) pf_off="$pf_off$pf_list "; break ;;
    esac
  done
  # The services, read by this shell (a here-document, no pipeline subshell): as the
  # validation just before read them (pf_running passed them on), else from postconf.
  if [ -n "$pf_gate_services" ]; then
    pf_services=$pf_gate_services pf_gate_services=
  else
    pf_services=$(postconf -c "$1" -x -M 2>/dev/null)
  fi
  pf_listeners=
  while read -r pf_service pf_type _ _ _ _ _ pf_command pf_args; do
    [ "$pf_type" = inet ] || continue
    case $pf_off in *" inet "* | *" $pf_service/inet "*) continue ;; esac
    case $pf_command in smtpd|postscreen) pf_expect=220 ;; *) pf_expect=- ;; esac
    case $pf_command in
      smtpd) [ "$pf_wrap" = yes ] || [ -n "$pf_proxy" ] && pf_expect=- ;;
      postscreen) [ -n "$pf_psproxy" ] && pf_expect=- ;;
    esac
    case " $pf_args " in
      *smtpd_tls_wrappermode=yes*|*upstream_proxy_protocol=?*) pf_expect=- ;;
    esac
    case $pf_service in
      \[*\]:*) pf_host=${pf_service%%]:*}; pf_host=${pf_host#[}; pf_port=${pf_service##*]:} ;;
      *:*) pf_host=${pf_service%:*}; pf_port=${pf_service##*:} ;;
      *) pf_port=$pf_service
         # No address: the instance listens on inet_interfaces; loopback answers for "all".
         case $pf_where in
           all|*localhost*|*loopback*|*127.0.0.1*|*::1*|'')
             pf_host=127.0.0.1; [ -n "$pf_v6only" ] && pf_host=::1 ;;
           *) # the first address of the list (commas and blanks separate)
              pf_host=$pf_where
              while :; do case $pf_host in [,' ']*) pf_host=${pf_host#?} ;; *) break ;; esac; done
              pf_host=${pf_host%%[,' ']*}
              pf_host=${pf_host#[}; pf_host=${pf_host%]} ;;
         esac ;;
    esac
    pf_listeners="$pf_listeners $pf_host $pf_port $pf_expect"
  done <<PF_SERVICES
$pf_services
PF_SERVICES
  # All of them by one process (addresses, ports and codes are single words).
  if [ -n "$pf_listeners" ]; then
    set -f
    # shellcheck disable=SC2086
    pf_probe $pf_listeners
    pf_rc=$?
    set +f
    [ "$pf_rc" -eq 0 ] || return 1
  fi
  shift
  # The playbook's checks (verify:): `smtp HOST PORT CODE` or `command CMD`.
  while [ "$#" -gt 0 ]; do
    case $1 in
      smtp) pf_probe "$2" "$3" "$4" || return 1; shift 4 ;;
      command)
        # Bounded: a check that hangs must not hold the host's lock.
        pf_said=$(timeout 60 sh -c "$2" </dev/null 2>&1) ||
          { printf 'check `%s` failed: %s\n' "$2" "$(printf '%s' "$pf_said" | tail -n 3)"; return 1; }
        shift 2 ;;
      *) echo "unknown check $1"; return 1 ;;
    esac
  done
}
# Sets pf_entries to master.cf's entries as `postconf -x -M` prints the ones the gate reads
# (one line each, continuation lines joined), from TEXT, master.cf without its comment lines:
# after a validation that read the staged file, the gate runs no postconf -M. Only plain text
# is read so: with a CR anywhere, or an inet entry holding a `$name` (which -x expands) or
# braces (which -M rewrites), it returns false with pf_entries empty: postconf reads them.
pf_entries() {  # TEXT
  pf_entries= pf_entry=
  case $1 in *"$PF_CR"*) return 1 ;; esac
  pf_rest="$1$PF_NL"
  while [ -n "$pf_rest" ]; do
    pf_l=${pf_rest%%"$PF_NL"*}
    pf_rest=${pf_rest#*"$PF_NL"}
    case $pf_l in
      *[![:space:]]*) ;;
      *) continue ;;  # blank
    esac
    case $pf_l in
      [[:space:]]*) pf_entry="$pf_entry $pf_l"; continue ;;  # continued
    esac
    pf_entry_add || return 1
    pf_entry=$pf_l
  done
  pf_entry_add
}
pf_entry_add() {  # (pf_entries' last entry, pf_entry, done)
  [ -n "$pf_entry" ] || return 0
  case $pf_entry in
    *[[:space:]]inet[[:space:]]*)
      case $pf_entry in *'$'* | *'{'* | *'}'*) pf_entries=; return 1 ;; esac ;;
  esac
  pf_entries="$pf_entries$pf_entry$PF_NL"
}
# Connects to each HOST:PORT (a port name through /etc/services) and, unless EXPECT is -,
# reads the greeting (within 30 s: a busy instance may hold a new client in its backlog),
# whose code must be EXPECT (220 for a listener of the instance's). Prints what it saw of the
# first one that does not. bash (Essential on Debian) connects with its /dev/tcp, some 3 ms
# of CPU where a perl with IO::Socket::IP takes 30; a connection to the host's own
# addresses is answered at once, and timeout bounds the rest.
pf_probe() {  # HOST PORT EXPECT [HOST PORT EXPECT...]
  if ! command -v bash >/dev/null 2>&1; then
    while [ "$#" -ge 3 ]; do pf_probe_perl "$1" "$2" "$3" || return 1; shift 3; done
    return 0
  fi
  timeout 60 bash -c '
    printf -v cr "\r"
    while [ "$#" -ge 3 ]; do
      host=$1 port=$2 expect=$3
      shift 3
      deadline=$((SECONDS + 10))
      until { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
          echo "$host:$port: connection refused"
          exit 1
        fi
        sleep 0.1
      done
      if [ "$expect" != - ]; then
        IFS= read -r -t 30 line <&3
        rc=$?
        line=${line%"$cr"}
        if [ "$rc" -gt 128 ]; then
          echo "$host:$port: no greeting within 30 s"
          exit 1
        elif [ "$rc" -ne 0 ] && [ -z "$line" ]; then
          echo "$host:$port: connection closed before greeting"
          exit 1
        fi
        case $line in
          "$expect "* | "$expect-"*) printf "QUIT\r\n" >&3 ;;
          *) echo "$host:$port: answered \"$line\" instead of $expect"; exit 1 ;;
        esac
      fi
      exec 3<&-
    done' pf_probe "$@"
  pf_rc=$?
  [ "$pf_rc" -ne 124 ] || echo "no answer from the listeners within 60 s"
  return "$pf_rc"
}
# Without bash: one perl with IO::Socket::IP (perl-base) per listener.
pf_probe_perl() {  # HOST PORT EXPECT
  perl -MIO::Socket::IP -e '
    my ($host, $port, $expect) = @ARGV;
    $port = getservbyname($port, "tcp") || $port unless $port =~ /^\d+$/;
    my ($deadline, $why) = (time + 10, "no connection");
    while (time < $deadline) {
      my $s = IO::Socket::IP->new(PeerHost => $host, PeerPort => $port, Proto => "tcp", Timeout => 3);
      if (!$s) { $why = "connection refused ($!)"; select(undef, undef, undef, 0.1); next; }
      exit 0 if $expect eq "-";
      my $line;
      eval { local $SIG{ALRM} = sub { die "late\n" }; alarm 30; $line = <$s>; alarm 0; };
      if (defined $line && $line =~ /^\Q$expect\E[ -]/) { print $s "QUIT\r\n"; exit 0; }
      $why = $@ eq "late\n" ? "no greeting within 30 s"
           : defined $line ? "answered \"" . ($line =~ s/\r?\n\z//r) . "\" instead of $expect"
           : "connection closed before greeting";
      last;
    }
    print "$host:$port: $why\n";
    exit 1;
  ' "$1" "$2" "$3"
}
