#!/bin/sh
# postfleet lab: PID-1 payload of a plain-mode host (under tini, which reaps and forwards
# signals). Starts sshd and Postfix the sysvinit way, so `service ssh|postfix ...` and
# `postfix start|stop` work inside (a bastion, marked by /etc/postfleet-lab-bastion, runs sshd
# only). Writes /run/postfleet-lab-ready once both are started; on SIGTERM stops them and
# exits, which ends the host.
log=/var/log/postfleet-lab-init.log
mkdir -p /run/sshd /run/lock /var/log
chmod 755 /run/sshd
: > "$log"
[ -e /etc/postfleet-lab-bastion ] || /etc/init.d/postfix start >> "$log" 2>&1
/etc/init.d/ssh start >> "$log" 2>&1
echo ready > /run/postfleet-lab-ready

stop() {
    /etc/init.d/postfix stop >> "$log" 2>&1
    /etc/init.d/ssh stop >> "$log" 2>&1
    exit 0
}
trap stop TERM INT
while :; do
    sleep 3600 &
    wait $!
done
