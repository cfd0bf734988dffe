//! OpenSSH certificates against a real sshd (root and the lab needed): a lab of its own
//! (`cert`), whose host h1 runs extra sshd instances with host certificates made here by
//! ssh-keygen, trusting a user CA made here. postfleet's Session must log in with user
//! certificates (from files and from ssh-agent; the keys are in no authorized_keys), accept a
//! host certificate through an `@cert-authority` known_hosts line alone, and refuse a host
//! certificate from another CA, an expired one, and a plain key where a certificate is
//! expected, even with --accept-new.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use postfleet_ssh::{HostKeyPolicy, KeyStore, Session, SshError, SshOptions, Target};

const LAB: &str = "cert";

/// Runs ssh-keygen in `dir`, panicking with its stderr unless it succeeds.
fn keygen(dir: &Path, args: &[&str]) {
    let out = Command::new("ssh-keygen")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn new_key(dir: &Path, name: &str, kind: &str) -> PathBuf {
    keygen(dir, &["-q", "-t", kind, "-N", "", "-C", name, "-f", name]);
    dir.join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `text` to `path` inside `host` (the text has no single quotes).
fn put(lab: &Lab, host: &str, path: &str, text: &str) {
    assert!(!text.contains('\''), "{text}");
    host_ok(
        lab,
        host,
        &format!("printf '%s\\n' '{}' > {path}", text.trim()),
    );
}

fn options(known_hosts: &Path, policy: HostKeyPolicy, agent: Option<PathBuf>) -> SshOptions {
    SshOptions {
        host_key_policy: policy,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(20),
        default_known_hosts: known_hosts.to_path_buf(),
        keepalive_interval: Duration::from_secs(15),
        keepalive_max: 3,
        agent_socket: agent,
        keys: Arc::new(KeyStore::new(None, false)),
    }
}

fn target(address: &str, port: u16, keys: &[&Path], certs: &[&Path]) -> Target {
    Target {
        key_files: keys.iter().map(|k| k.to_path_buf()).collect(),
        certificate_files: certs.iter().map(|c| c.to_path_buf()).collect(),
        ..Target::new(address, port, "root")
    }
}

/// Connects and runs `id -un`; the user name on success.
async fn login(target: &Target, opts: &SshOptions) -> Result<String, SshError> {
    let session = Session::connect(target, opts).await?;
    let out = session.run_script("id -un", &mut |_| {}).await?;
    session.close().await;
    assert_eq!(out.exit_status, Some(0), "{out:?}");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Starts an sshd on `port` in `host` (Debian 13: OpenSSH 10) that presents `certificate` (a
/// file in the host) for its Ed25519 host key and trusts the user CA; sshd returns once it
/// listens. The test is refused on purpose many times from one address: OpenSSH's
/// PerSourcePenalties would then drop its next connections at the handshake, depending on
/// timing, so they are off here.
fn start_sshd(lab: &Lab, host: &str, port: u16, certificate: &str) {
    let dir = "/etc/ssh/postfleet-cert-test";
    let config = format!(
        "Port {port}\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostCertificate {certificate}\n\
         TrustedUserCAKeys {dir}/user_ca.pub\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n\
         PidFile /run/sshd-cert-{port}.pid\nPerSourcePenalties no\n"
    );
    put(lab, host, &format!("{dir}/sshd_{port}_config"), &config);
    host_ok(
        lab,
        host,
        &format!("/usr/sbin/sshd -f {dir}/sshd_{port}_config -E {dir}/sshd_{port}.log"),
    );
}

/// An ssh-agent of this test (daemonised: it listens once `ssh-agent` returns); killed by pid
/// on drop.
struct Agent {
    socket: PathBuf,
    pid: i32,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let out = Command::new("ssh-agent")
            .arg("-s")
            .arg("-a")
            .arg(&socket)
            .output()
            .expect("ssh-agent runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pid = text
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no agent pid in {text:?}"));
        Agent { socket, pid }
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add runs");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

#[test]
#[ignore = "needs root and the lab"]
fn certificates_against_a_real_sshd() {
    lab_ok(LAB, &["down", "--purge"]);
    lab_ok(LAB, &["up", "--hosts", "1"]);
    let lab = Lab::open(LAB).expect("the cert lab is up");
    let address = lab.host("h1").expect("h1").address.to_string();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenarios(&lab, &address)));
    lab_ok(LAB, &["down", "--purge"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn scenarios(lab: &Lab, address: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let host_ca = new_key(dir, "host_ca", "ed25519");
    new_key(dir, "other_ca", "ed25519");
    let user_ca = new_key(dir, "user_ca", "ed25519");

    // The host's own Ed25519 key, signed here three ways.
    let host_pub = dir.join("host.pub");
    std::fs::write(
        &host_pub,
        host_ok(lab, "h1", "cat /etc/ssh/ssh_host_ed25519_key.pub"),
    )
    .unwrap();
    let remote = "/etc/ssh/postfleet-cert-test";
    host_ok(lab, "h1", &format!("mkdir -p {remote}"));
    put(
        lab,
        "h1",
        &format!("{remote}/user_ca.pub"),
        &read(&user_ca.with_extension("pub")),
    );
    let signings: [(&str, &Path, &str, u16); 3] = [
        ("good", &host_ca, "-5m:+1h", 2201),
        ("other", &dir.join("other_ca"), "-5m:+1h", 2202),
        ("expired", &host_ca, "20200101:20200102", 2203),
    ];
    for (name, ca, validity, port) in signings {
        let ca = ca.to_string_lossy().into_owned();
        keygen(
            dir,
            &[
                "-q",
                "-s",
                &ca,
                "-h",
                "-I",
                &format!("h1-{name}"),
                "-z",
                "7",
                "-n",
                address,
                "-V",
                validity,
                "host.pub",
            ],
        );
        let cert = format!("{remote}/host-{name}-cert.pub");
        put(lab, "h1", &cert, &read(&dir.join("host-cert.pub")));
        start_sshd(lab, "h1", port, &cert);
    }

    // known_hosts with the host CA only: no plain key of h1 anywhere.
    let known_hosts = dir.join("known_hosts");
    let ca_line = format!(
        "@cert-authority [{address}]:*,{address} {}",
        read(&host_ca.with_extension("pub")).trim()
    );
    std::fs::write(&known_hosts, format!("{ca_line}\n")).unwrap();

    // User keys the host knows only through the user CA (the lab key is not used).
    let user = new_key(dir, "user", "ed25519");
    keygen(
        dir,
        &[
            "-q",
            "-s",
            "user_ca",
            "-I",
            "ops@laptop",
            "-n",
            "root",
            "-V",
            "-5m:+1h",
            "user.pub",
        ],
    );
    let rsa_user = new_key(dir, "rsa_user", "rsa");
    keygen(
        dir,
        &[
            "-q",
            "-s",
            "user_ca",
            "-I",
            "rsa-ops",
            "-n",
            "root",
            "rsa_user.pub",
        ],
    );
    let named = new_key(dir, "named", "ed25519");
    keygen(
        dir,
        &[
            "-q",
            "-s",
            "user_ca",
            "-I",
            "named",
            "-n",
            "root",
            "named.pub",
        ],
    );
    let named_cert = dir.join("certs").join("issued.pub");
    std::fs::create_dir(dir.join("certs")).unwrap();
    std::fs::rename(dir.join("named-cert.pub"), &named_cert).unwrap();
    let stale = new_key(dir, "stale", "ed25519");
    keygen(
        dir,
        &[
            "-q",
            "-s",
            "user_ca",
            "-I",
            "stale-id",
            "-n",
            "root",
            "-V",
            "20200101:20200102",
            "stale.pub",
        ],
    );
    let wrong_user = new_key(dir, "wrong_user", "ed25519");
    keygen(
        dir,
        &[
            "-q",
            "-s",
            "user_ca",
            "-I",
            "deploy-only",
            "-n",
            "deploy",
            "wrong_user.pub",
        ],
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let strict = options(&known_hosts, HostKeyPolicy::Strict, None);
    let accept_new = options(&known_hosts, HostKeyPolicy::AcceptNew, None);
    rt.block_on(async {
        // Host certificate accepted through the CA line; user certificate beside the key.
        let good = target(address, 2201, &[&user], &[]);
        assert_eq!(login(&good, &strict).await.unwrap(), "root");
        // An RSA user certificate (signed rsa-sha2-512, as OpenSSH >= 8.8 requires).
        let rsa = target(address, 2201, &[&rsa_user], &[]);
        assert_eq!(login(&rsa, &strict).await.unwrap(), "root");
        // A certificate named as CertificateFile, not beside its key.
        let by_name = target(address, 2201, &[&named], &[&named_cert]);
        assert_eq!(login(&by_name, &strict).await.unwrap(), "root");
        // Accepted with --accept-new too, and nothing learned.
        assert_eq!(login(&good, &accept_new).await.unwrap(), "root");
        assert_eq!(read(&known_hosts), format!("{ca_line}\n"));

        // Certificates that cannot work: the message says which and why.
        let refused = target(address, 2201, &[&stale, &wrong_user], &[]);
        let error = login(&refused, &strict).await.unwrap_err();
        let text = error.to_string();
        eprintln!("{text}");
        assert!(matches!(error, SshError::AuthFailed { .. }), "{text}");
        for part in [
            "stale-cert.pub",
            "key ID \"stale-id\"",
            "expired at 2020-01-02",
            "wrong_user-cert.pub",
            "not valid for user root, only for deploy",
        ] {
            assert!(text.contains(part), "{part:?} not in: {text}");
        }
        // The key alone (no certificate) is not in authorized_keys: the certificate did it.
        let bare = dir.join("bare");
        std::fs::copy(&user, &bare).unwrap();
        let error = login(&target(address, 2201, &[&bare], &[]), &strict)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("bare (refused)"), "{error}");

        // A host certificate from another CA: refused, even with --accept-new.
        for opts in [&strict, &accept_new] {
            let error = login(&target(address, 2202, &[&user], &[]), opts)
                .await
                .unwrap_err();
            let text = error.to_string();
            eprintln!("{text}");
            assert!(
                matches!(error, SshError::HostCertificateRejected { .. }),
                "{text}"
            );
            assert!(text.contains("key ID \"h1-other\", serial 7"), "{text}");
            assert!(text.contains("unknown CA"), "{text}");
        }
        // An expired host certificate: refused.
        let error = login(&target(address, 2203, &[&user], &[]), &accept_new)
            .await
            .unwrap_err();
        let text = error.to_string();
        eprintln!("{text}");
        assert!(text.contains("key ID \"h1-expired\""), "{text}");
        assert!(
            text.contains("expired at 2020-01-02 00:00:00 UTC"),
            "{text}"
        );
        // The plain sshd on port 22 shows its plain key where a certificate is expected:
        // refused and not learned, even with --accept-new.
        let error = login(&target(address, 22, &[&user], &[]), &accept_new)
            .await
            .unwrap_err();
        eprintln!("{error}");
        assert!(
            matches!(error, SshError::HostCertificateMissing { .. }),
            "{error}"
        );
        assert_eq!(read(&known_hosts), format!("{ca_line}\n"));

        // The host CA marked @revoked: the good certificate is refused too.
        let revoked = dir.join("known_hosts_revoked");
        std::fs::write(
            &revoked,
            format!(
                "{ca_line}\n@revoked * {}",
                read(&host_ca.with_extension("pub"))
            ),
        )
        .unwrap();
        let opts = options(&revoked, HostKeyPolicy::AcceptNew, None);
        let error = login(&good, &opts).await.unwrap_err();
        eprintln!("{error}");
        assert!(
            error
                .to_string()
                .contains("its CA is marked @revoked (line 2)"),
            "{error}"
        );
    });

    // OpenSSH's client agrees on each of these hosts.
    let openssh = |port: u16, key: &Path| {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .args(["-o", "IdentitiesOnly=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args([
                "-o",
                "BatchMode=yes",
                "-p",
                &port.to_string(),
                "-l",
                "root",
                address,
                "true",
            ])
            .output()
            .expect("ssh runs")
            .status
            .success()
    };
    assert!(
        openssh(2201, &user),
        "OpenSSH logs in with the certificates"
    );
    assert!(
        !openssh(2202, &user),
        "OpenSSH refuses the other CA's certificate"
    );
    assert!(
        !openssh(2203, &user),
        "OpenSSH refuses the expired certificate"
    );
    assert!(
        !openssh(2201, &dir.join("bare")),
        "OpenSSH is refused the bare key"
    );

    // Certificates held by ssh-agent (no key file given at all).
    let agent = Agent::start(dir);
    let agent_dir = dir.join("agent-keys");
    std::fs::create_dir(&agent_dir).unwrap();
    for file in ["user", "user-cert.pub"] {
        std::fs::copy(dir.join(file), agent_dir.join(file)).unwrap();
    }
    agent.add(&agent_dir.join("user"));
    let nothing = dir.join("no-such-key");
    let via_agent = options(
        &known_hosts,
        HostKeyPolicy::Strict,
        Some(agent.socket.clone()),
    );
    rt.block_on(async {
        let only_agent = target(address, 2201, &[&nothing], &[]);
        assert_eq!(login(&only_agent, &via_agent).await.unwrap(), "root");
    });
    // And a CertificateFile whose key only the agent holds.
    let agent_only = Agent::start(&dir.join("certs"));
    agent_only.add(&named);
    let named_via_agent = options(
        &known_hosts,
        HostKeyPolicy::Strict,
        Some(agent_only.socket.clone()),
    );
    rt.block_on(async {
        let by_agent = target(address, 2201, &[&nothing], &[&named_cert]);
        assert_eq!(login(&by_agent, &named_via_agent).await.unwrap(), "root");
    });
}

/// `lab up --ssh-ca`: postfleet (with the lab's inventory settings: its key, whose
/// certificate sits beside it, and its known_hosts, one `@cert-authority` line) logs in with
/// the lab key's certificate once the plain key is gone from authorized_keys; OpenSSH does too.
#[test]
#[ignore = "needs root and the lab"]
fn lab_up_with_ssh_ca() {
    const CA_LAB: &str = "certca";
    lab_ok(CA_LAB, &["down", "--purge"]);
    lab_ok(CA_LAB, &["up", "--hosts", "2", "--ssh-ca"]);
    let lab = Lab::open(CA_LAB).expect("the certca lab is up");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let known_hosts = read(&lab.known_hosts_path());
        assert!(
            known_hosts.starts_with("@cert-authority ") && known_hosts.lines().count() == 1,
            "{known_hosts}"
        );
        let inventory = lab_ok(CA_LAB, &["inventory"]);
        assert!(inventory.contains("ssh_known_hosts_file"), "{inventory}");
        let key = lab.key_path();
        let opts = options(&lab.known_hosts_path(), HostKeyPolicy::Strict, None);
        let rt = tokio::runtime::Runtime::new().unwrap();
        for host in lab.hosts() {
            host_ok(&lab, &host.name, "rm /root/.ssh/authorized_keys");
            let address = host.address.to_string();
            let to = target(&address, 22, &[&key], &[]);
            assert_eq!(rt.block_on(login(&to, &opts)).unwrap(), "root");
            let out = lab
                .ssh_command(&host.name, "root")
                .unwrap()
                .arg("true")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Without its certificate the key is refused now: the certificate did it.
        let bare = tempfile::tempdir().unwrap();
        std::fs::copy(&key, bare.path().join("key")).unwrap();
        let address = lab.hosts()[0].address.to_string();
        let to = target(&address, 22, &[&bare.path().join("key")], &[]);
        assert!(matches!(
            rt.block_on(login(&to, &opts)),
            Err(SshError::AuthFailed { .. })
        ));
    }));
    lab_ok(CA_LAB, &["down", "--purge"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
