#!/bin/sh
# postfleet lab: second half of the base tree recipe. Runs once per base build, as root, in a
# chroot of the freshly debootstrapped tree, inside a private mount namespace (so nothing
# mounted here outlives the build). The apt sources are the ones debootstrap wrote: the
# machine's own mirror. Per-host identity (host keys, machine-id, names, the lab's ssh key)
# is NOT made here: `lab up` writes it into each host's upper layer.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
mount -t proc proc /proc
trap 'umount /proc' EXIT

# No daemon may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

# Postfix as Debian's "Local only", then opened up below like an internet-facing box.
debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string localhost
postfix postfix/destinations string $myhostname, localhost.localdomain, localhost
EOF
apt-get -q -o Acquire::Check-Valid-Until=false update
apt-get -q -y install --no-install-recommends postfix bsd-mailx openssh-client tini
apt-get clean
rm -rf /var/lib/apt/lists/*

# myhostname is set per host; "Local only" makes every non-local mail bounce: undo that.
postconf -X myhostname default_transport relay_transport
postconf -e 'inet_interfaces = all' 'maillog_file = /var/log/mail.log' \
    'mydestination = $myhostname, localhost.localdomain, localhost'

# sshd: key logins only; host keys are generated per host (ed25519 and ecdsa: RSA is slow).
rm -f /etc/ssh/ssh_host_*
cat > /etc/ssh/sshd_config.d/postfleet-lab.conf <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# Tests open many connections and channels at once.
MaxStartups 200
MaxSessions 200
EOF

# Users: root and deploy (NOPASSWD sudo); the lab key is added per host.
useradd -m -s /bin/bash deploy
echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy
chmod 440 /etc/sudoers.d/deploy
install -d -m 700 /root/.ssh
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh

# Nothing in the lab may reach out: no DNS, no periodic apt downloads.
echo 'nameserver 127.0.0.1' > /etc/resolv.conf
ln -sf /dev/null /etc/systemd/system/apt-daily.timer
ln -sf /dev/null /etc/systemd/system/apt-daily-upgrade.timer

# Identity is per host.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id

rm -f /usr/sbin/policy-rc.d
