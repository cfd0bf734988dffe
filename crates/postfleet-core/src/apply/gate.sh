# The health gate: an instance that was started, reloaded or restarted serves. Its master
# runs, and every inet listener of its master.cf accepts a TCP connection (within 10 s: a
# master just started binds them first) and, for smtpd and postscreen, answers with an SMTP
# 220 greeting (within 30 s). Prints what it saw of the first listener that does not.
pf_gate() {  # CONFIG_DIR [CHECK...]
  pf_running "$1" || { echo "its master process is not running"; return 1; }
  # Values as Postfix uses them ($name expanded).
  pf_where=$(postconf -c "$1" -x -h inet_interfaces 2>/dev/null)
  pf_v6only=; [ "$(postconf -c "$1" -x -h inet_protocols 2>/dev/null)" = ipv6 ] && pf_v6only=1
  # master_service_disable turns listeners off that master.cf still lists (e.g. "inet").
  pf_off=" $(postconf -c "$1" -x -h master_service_disable 2>/dev/null | tr ',' ' ') "
  # A listener that speaks TLS first (wrapper mode) or expects a PROXY header is checked for
  # accepting the connection only: a plain SMTP client gets no greeting from it, by design.
  pf_wrap=$(postconf -c "$1" -x -h smtpd_tls_wrappermode 2>/dev/null)
  pf_proxy=$(postconf -c "$1" -x -h smtpd_upstream_proxy_protocol 2>/dev/null)
  pf_psproxy=$(postconf -c "$1" -x -h postscreen_upstream_proxy_protocol 2>/dev/null)
  postconf -c "$1" -x -M 2>/dev/null | while read -r pf_service pf_type _ _ _ _ _ pf_command pf_args; do
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
           *) pf_host=$(printf '%s' "$pf_where" | tr ', ' '\n\n' | grep -v '^$' | head -n 1)
              pf_host=${pf_host#[}; pf_host=${pf_host%]} ;;
         esac ;;
    esac
    pf_probe "$pf_host" "$pf_port" "$pf_expect" || return 1
  done || return 1
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
# Connects to HOST:PORT (a port name through /etc/services) and, unless EXPECT is -, reads
# the greeting (within 30 s: a busy instance may hold a new client in its backlog), whose code
# must be EXPECT (220 for a listener of the instance's). perl-base (Essential on Debian) has IO::Socket::IP (IPv4
# and IPv6).
pf_probe() {  # HOST PORT EXPECT
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
