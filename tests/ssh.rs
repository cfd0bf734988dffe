//! SSH transport against the in-process simulator on loopback: host keys, auth, commands,
//! faults. The 1000-connection benchmark is `#[ignore]`d:
//! `cargo test --test ssh -- --ignored --nocapture thousand`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use postfleet_sim::{Fault, SimCommand, SimHost, SimReply, Simulator};
use postfleet_ssh::Target as Connection;
use postfleet_ssh::{guard_stdin, HostKeyPolicy, KeyStore, Session, SshError, SshOptions};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};

/// A throwaway 2048-bit RSA key made with ssh-keygen for this test (RSA key generation is too
/// slow in a debug build to do per run).
const RSA_FIXTURE: &str = "\
-----BEGIN OPENSSH PRIVATE KEY-----\n\
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn\n\
NhAAAAAwEAAQAAAQEArW9dkIsBULmFe3kdTRkQg6JVYim2NBFh0zIs7FtG2niI7Egq04a9\n\
ygWzjKAFqZYwujnE/fSuwybXbI6tVO+Dmhf1uKUwY2lUvqMxAaAobkhXDpBMDOuLLHB+ZK\n\
AjjMdDBlPWgaCa+EYA5OwdCgxorFcoe2RCUmL/j5fc6BwAkGLUjyX1trpYEZMxICPvjn2O\n\
HJtd/ptmuJ8iOG9QJMlOlqhvhgtnCkuB1Q2uGBS23+xpDniY9jmpBWMKzbbgBwd6jsZyhg\n\
5Dde9aXcf3Vu1p8oh7EehgnKvJlJOhFR81dIqM40BQQTRTCTeuyshfkxt1cyPVQ2CTfMOe\n\
nH2xQDZTdQAAA9AN+tP1DfrT9QAAAAdzc2gtcnNhAAABAQCtb12QiwFQuYV7eR1NGRCDol\n\
ViKbY0EWHTMizsW0baeIjsSCrThr3KBbOMoAWpljC6OcT99K7DJtdsjq1U74OaF/W4pTBj\n\
aVS+ozEBoChuSFcOkEwM64sscH5koCOMx0MGU9aBoJr4RgDk7B0KDGisVyh7ZEJSYv+Pl9\n\
zoHACQYtSPJfW2ulgRkzEgI++OfY4cm13+m2a4nyI4b1AkyU6WqG+GC2cKS4HVDa4YFLbf\n\
7GkOeJj2OakFYwrNtuAHB3qOxnKGDkN171pdx/dW7WnyiHsR6GCcq8mUk6EVHzV0iozjQF\n\
BBNFMJN67KyF+TG3VzI9VDYJN8w56cfbFANlN1AAAAAwEAAQAAAQANYxiTHP0FAMz6MucS\n\
xGnZ6fXdQIr9NI+bKwxR/Nmt6LqTl8khJWK7l/pmqGjHe6hXN45VFptGxQDBMwzTZDQsTh\n\
0mxi7DUvtk8QPKCaq/7dA1Ij48i7yPuZSH/98T8W2NrNBUln5fxkeGDr5PFZYezLt7NXSe\n\
bLXSnPjtkaZu0+bi34gEmFL1USvVZ1vlDkZftPYFUVcDY7kOrZD2YZRB9tnL+AhaghEpUr\n\
UftxdIfSVPMwI7CB+oO0o+3WvQJfnzbE9JEyJqR0wd2Dt/Z2dAmhHmwpL5EOLmHui7Jzf1\n\
uGgUrjINzhT3b5P9Ej/ZnbJ7/4WXU+lLbPYxgJIL4EQBAAAAgBFz/yITs2vdeWf0hjM3WZ\n\
dItFXG+fcGO+C4JZZ8EMIz3nj2eykLN4aAaQE1eBCk2ALtdi1cOOCuBBW9/KdCEaxbB/6O\n\
LE88JD5BQs/IHHwGcdx+MgVnrbnf+Z5Wv6k1OAxALRFMoB48Zvbi9aileOg09UT0oQzvKn\n\
vOU8r+C3v1AAAAgQDZ37YTHAhhs9eezpOqk5WJCgYZG8S6umc/B+tyODtq91776oFKNUGI\n\
BWUyDVs6c++ukpy/itUgWdeLzXP7znd1ZlFXUSrSQXfAvJv2sbggJQO/kmd1NNvhsn8KuP\n\
s4B2unTK3drQMXsqyok/ql/Zzts4VLwuJeAtp5gt9HkBwv4QAAAIEAy8jjQYj/2eBKSlPU\n\
wiAK7uhx5GqhatfBCpu8KMGlgb05M8S92X+gzJD7BH0VcAcXJ7VU07dAGKTIgMgBCQziGT\n\
HbZW0s0DSmgkr9G2JC2e3W7NkE0Birzve3QpYr7e1N+H5eSTd5j0R/64dSq+Sy9AcKjTQr\n\
lonsTUIICLQrJhUAAAAWcG9zdGZsZWV0IHRlc3QgZml4dHVyZQECAwQF\n\
-----END OPENSSH PRIVATE KEY-----\n\
";

struct Fixture {
    dir: tempfile::TempDir,
    key: PrivateKey,
    key_file: PathBuf,
    known_hosts: PathBuf,
}

impl Fixture {
    /// A connection as root to host 0 of `sim`.
    async fn root_session(&self, sim: &Simulator) -> Session {
        Session::connect(&self.connection(sim, 0, "root"), &self.options())
            .await
            .unwrap()
    }

    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let key_file = dir.path().join("id_ed25519");
        key.write_openssh_file(&key_file, LineEnding::LF).unwrap();
        let known_hosts = dir.path().join("known_hosts");
        Fixture {
            dir,
            key,
            key_file,
            known_hosts,
        }
    }

    fn public(&self) -> PublicKey {
        self.key.public_key().clone()
    }

    fn options(&self) -> SshOptions {
        SshOptions {
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(20),
            default_known_hosts: self.known_hosts.clone(),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            agent_socket: None,
            keys: Arc::new(KeyStore::new(None, false)),
        }
    }

    /// Connection to simulator host `index` as `user` with our key file.
    fn connection(&self, sim: &Simulator, index: usize, user: &str) -> Connection {
        Connection {
            key_files: vec![self.key_file.clone()],
            ..sim.connection(index, user)
        }
    }

    fn trust_all(&self, sim: &Simulator) {
        std::fs::write(&self.known_hosts, sim.known_hosts()).unwrap();
    }
}

/// Echoes stdin back on stdout, reports the command on stderr, exits 0.
fn echo(cmd: &SimCommand) -> SimReply {
    SimReply::new(cmd.stdin.clone(), format!("ran: {}\n", cmd.command), 0)
}

fn host(name: &str, fixture: &Fixture) -> SimHost {
    SimHost::new(name, fixture.public(), echo)
}

async fn start(hosts: Vec<SimHost>) -> Simulator {
    Simulator::start(hosts).await.unwrap()
}

fn collect_lines() -> (Arc<Mutex<Vec<String>>>, impl FnMut(&str) + Send) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (lines, move |line: &str| {
        sink.lock().unwrap().push(line.to_string())
    })
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Runs `true` on the session; its exit status.
async fn runs_true(session: &Session) -> Option<u32> {
    session
        .run_script("true\n", &mut |_| {})
        .await
        .unwrap()
        .exit_status
}

#[tokio::test]
async fn known_host_runs_a_script() {
    let fx = Fixture::new();
    let sim = start(vec![SimHost::new("mx1", fx.public(), |cmd| {
        if cmd.command == "/bin/sh -s" {
            SimReply::new("first\nsecond\nno newline", "a warning\n", 3)
        } else {
            // A real local shell judges the quoting.
            let ran = std::process::Command::new("/bin/sh")
                .args(["-c", &cmd.command])
                .output()
                .unwrap();
            SimReply::new(
                ran.stdout,
                ran.stderr,
                ran.status.code().unwrap_or(255) as u32,
            )
        }
    })])
    .await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    assert_eq!(session.round_trips(), 0);

    let (lines, mut on_line) = collect_lines();
    let output = session
        .run_script("echo hello\nexit 3\n", &mut on_line)
        .await
        .unwrap();
    assert_eq!(output.stdout, b"first\nsecond\nno newline");
    assert_eq!(output.stderr, b"a warning\n");
    assert_eq!(output.exit_status, Some(3));
    assert_eq!(*lines.lock().unwrap(), ["first", "second", "no newline"]);

    assert_eq!(session.round_trips(), 1);
    session.close().await;

    let commands = sim.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].command, "/bin/sh -s");
    assert_eq!(
        commands[0].stdin,
        guard_stdin("echo hello\nexit 3\n").as_bytes()
    );
    // A small script travels inside the exec request: nothing waits for the window.
    assert!(commands[0].inline);
    assert_eq!(commands[0].user, "root");
    let auths = sim.auths();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0].algorithm, "ssh-ed25519");
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_the_way_to_trust_it() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    let error = Session::connect(&fx.connection(&sim, 0, "root"), &fx.options())
        .await
        .err()
        .unwrap();
    let port = sim.port(0);
    let SshError::HostKeyUnknown {
        host,
        fingerprint: shown,
        known_hosts,
    } = &error
    else {
        panic!("expected HostKeyUnknown, got {error:?}");
    };
    assert_eq!(host, &format!("[127.0.0.1]:{port}"));
    assert!(
        shown.contains(&fingerprint(&sim.host_public_key(0))),
        "{shown}"
    );
    assert_eq!(known_hosts, &fx.known_hosts.display().to_string());
    let message = error.to_string();
    let keyscan = format!(
        "ssh-keyscan -p {port} 127.0.0.1 >> {}",
        fx.known_hosts.display()
    );
    assert!(message.contains(&keyscan), "{message}");
    assert!(message.contains("--accept-new"), "{message}");
    assert!(
        !fx.known_hosts.exists(),
        "strict mode must not write known_hosts"
    );
    assert!(
        sim.auths().is_empty(),
        "no authentication to an unverified host"
    );
}

#[tokio::test]
async fn accept_new_learns_an_unknown_key_into_a_new_private_file() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    let known_hosts = fx.dir.path().join("new-dir").join("known_hosts");
    let conn = Connection {
        known_hosts: Some(known_hosts.clone()),
        ..fx.connection(&sim, 0, "root")
    };
    let accept_new = SshOptions {
        host_key_policy: HostKeyPolicy::AcceptNew,
        ..fx.options()
    };
    Session::connect(&conn, &accept_new)
        .await
        .unwrap()
        .close()
        .await;

    let text = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(text, sim.known_hosts_line(0) + "\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&known_hosts)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Now known: strict mode connects, and nothing more is written.
    Session::connect(&conn, &fx.options())
        .await
        .unwrap()
        .close()
        .await;
    Session::connect(&conn, &accept_new)
        .await
        .unwrap()
        .close()
        .await;
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), text);
}

#[tokio::test]
async fn a_changed_host_key_is_refused_even_with_accept_new() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    let old_key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let text = format!(
        "# managed by hand\n[127.0.0.1]:{} {}\n",
        sim.port(0),
        old_key.public_key().to_openssh().unwrap()
    );
    std::fs::write(&fx.known_hosts, &text).unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let options = SshOptions {
            host_key_policy: policy,
            ..fx.options()
        };
        let error = Session::connect(&fx.connection(&sim, 0, "root"), &options)
            .await
            .err()
            .unwrap();
        let SshError::HostKeyChanged {
            fingerprint: shown,
            known_hosts,
            ..
        } = &error
        else {
            panic!("expected HostKeyChanged, got {error:?}");
        };
        assert!(shown.contains(&fingerprint(&sim.host_public_key(0))));
        assert_eq!(known_hosts, &format!("{}:2", fx.known_hosts.display()));
        assert!(error.to_string().contains("ssh-keygen -R"), "{error}");
    }
    assert_eq!(std::fs::read_to_string(&fx.known_hosts).unwrap(), text);
}

#[tokio::test]
async fn accept_new_does_not_learn_a_key_of_another_type_than_the_known_one() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    let ecdsa = PrivateKey::random(
        &mut rand::rng(),
        Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        },
    )
    .unwrap();
    let text = format!(
        "[127.0.0.1]:{} {}\n",
        sim.port(0),
        ecdsa.public_key().to_openssh().unwrap()
    );
    std::fs::write(&fx.known_hosts, &text).unwrap();
    let accept_new = SshOptions {
        host_key_policy: HostKeyPolicy::AcceptNew,
        ..fx.options()
    };
    let error = Session::connect(&fx.connection(&sim, 0, "root"), &accept_new)
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(message.contains("not learning it"), "{message}");
    assert!(message.contains("ecdsa-sha2-nistp256"), "{message}");
    assert_eq!(std::fs::read_to_string(&fx.known_hosts).unwrap(), text);
    let error = Session::connect(&fx.connection(&sim, 0, "root"), &fx.options())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, SshError::HostKeyUnknown { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_hashed_known_hosts_entry_is_accepted() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    let salt = b"twenty bytes of salt";
    let name = format!("[127.0.0.1]:{}", sim.port(0));
    let hash = Hmac::<sha1::Sha1>::new_from_slice(salt)
        .unwrap()
        .chain_update(name.as_bytes())
        .finalize()
        .into_bytes();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let line = format!(
        "|1|{}|{} {}\n",
        b64.encode(salt),
        b64.encode(hash),
        sim.host_public_key(0).to_openssh().unwrap()
    );
    std::fs::write(&fx.known_hosts, line).unwrap();
    let session = fx.root_session(&sim).await;
    assert_eq!(runs_true(&session).await, Some(0));
}

fn write_rsa_fixture(fx: &Fixture) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = fx.dir.path().join("id_rsa");
    std::fs::write(&path, RSA_FIXTURE).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[tokio::test]
async fn an_rsa_key_signs_with_sha2_not_sha1() {
    let fx = Fixture::new();
    let rsa_file = write_rsa_fixture(&fx);
    let rsa = russh::keys::decode_secret_key(RSA_FIXTURE, None).unwrap();
    let sim = start(vec![SimHost::new("mx1", rsa.public_key().clone(), echo)]).await;
    fx.trust_all(&sim);
    let conn = Connection {
        key_files: vec![rsa_file],
        ..sim.connection(0, "root")
    };
    Session::connect(&conn, &fx.options()).await.unwrap();
    let auths = sim.auths();
    assert_eq!(auths.len(), 1);
    assert!(
        auths[0].algorithm.starts_with("rsa-sha2-"),
        "{:?}",
        auths[0]
    );
}

/// A real OpenSSH ssh-agent on a private socket, killed on drop.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &std::path::Path) -> Agent {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let socket = dir.join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent (OpenSSH client) is needed by this test");
        // It prints its environment once the socket is listening.
        let mut first_line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        assert!(first_line.contains("SSH_AUTH_SOCK"), "{first_line}");
        Agent { child, socket }
    }

    fn add(&self, key_file: &std::path::Path) {
        let status = std::process::Command::new("ssh-add")
            .arg(key_file)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add {}", key_file.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_agent_comes_first_and_each_of_its_keys_is_offered() {
    let fx = Fixture::new();
    let agent = Agent::start(fx.dir.path());
    let rsa_file = write_rsa_fixture(&fx);
    agent.add(&fx.key_file); // not authorized on the host
    agent.add(&rsa_file);
    let rsa = russh::keys::decode_secret_key(RSA_FIXTURE, None).unwrap();
    let sim = start(vec![SimHost::new("mx1", rsa.public_key().clone(), echo)]).await;
    fx.trust_all(&sim);
    let options = SshOptions {
        agent_socket: Some(agent.socket.clone()),
        ..fx.options()
    };
    let conn = Connection {
        key_files: vec![fx.dir.path().join("id_never_read")],
        ..sim.connection(0, "root")
    };
    let session = Session::connect(&conn, &options).await.unwrap();
    assert_eq!(runs_true(&session).await, Some(0));
    assert_eq!(options.keys.files_read(), 0, "the agent's key was enough");
    let auths = sim.auths();
    assert_eq!(auths.len(), 1);
    assert!(
        auths[0].algorithm.starts_with("rsa-sha2-"),
        "{:?}",
        auths[0]
    );
    assert!(
        sim.stats().auth_rejected >= 1,
        "the ed25519 key was offered first"
    );
}

#[tokio::test]
async fn an_unusable_agent_falls_back_to_key_files() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    fx.trust_all(&sim);
    let stale = fx.dir.path().join("gone.sock");
    let options = SshOptions {
        agent_socket: Some(stale.clone()),
        ..fx.options()
    };
    Session::connect(&fx.connection(&sim, 0, "root"), &options)
        .await
        .unwrap();
    // And when the key is refused too, both are named.
    let other = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let refusing = start(vec![SimHost::new("mx2", other.public_key().clone(), echo)]).await;
    fx.trust_all(&refusing);
    let error = Session::connect(&fx.connection(&refusing, 0, "root"), &options)
        .await
        .err()
        .unwrap();
    let text = error.to_string();
    assert!(
        text.contains(&format!("ssh-agent at {}", stale.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} (refused)", fx.key_file.display())),
        "{text}"
    );
}

fn encrypted_key_file(fx: &Fixture, passphrase: &str) -> PathBuf {
    let path = fx.dir.path().join("id_encrypted");
    fx.key
        .encrypt(&mut rand::rng(), passphrase)
        .unwrap()
        .write_openssh_file(&path, LineEnding::LF)
        .unwrap();
    path
}

#[tokio::test]
async fn an_encrypted_key_opens_with_the_passphrase_variable_only() {
    let fx = Fixture::new();
    let encrypted = encrypted_key_file(&fx, "correct horse");
    let sim = start(vec![host("mx1", &fx)]).await;
    fx.trust_all(&sim);
    let conn = Connection {
        key_files: vec![encrypted.clone()],
        ..sim.connection(0, "root")
    };

    // No passphrase and no terminal: a clear error naming the variable.
    let error = Session::connect(&conn, &fx.options()).await.err().unwrap();
    let SshError::AuthFailed { detail, .. } = &error else {
        panic!("expected AuthFailed, got {error:?}");
    };
    assert!(detail.contains("POSTFLEET_SSH_PASSPHRASE"), "{detail}");
    assert!(
        detail.contains(&encrypted.display().to_string()),
        "{detail}"
    );

    // A wrong passphrase says so.
    let wrong = SshOptions {
        keys: Arc::new(KeyStore::new(Some("wrong".into()), false)),
        ..fx.options()
    };
    let error = Session::connect(&conn, &wrong).await.err().unwrap();
    assert!(error.to_string().contains("does not decrypt"), "{error}");

    // The variable, read by KeyStore::from_env (the only test that sets it).
    std::env::set_var(postfleet_ssh::auth::PASSPHRASE_VAR, "correct horse");
    let from_env = SshOptions {
        keys: Arc::new(KeyStore::from_env()),
        ..fx.options()
    };
    std::env::remove_var(postfleet_ssh::auth::PASSPHRASE_VAR);
    let session = Session::connect(&conn, &from_env).await.unwrap();
    assert_eq!(runs_true(&session).await, Some(0));
}

#[tokio::test]
async fn a_key_the_server_does_not_accept_is_auth_failed_naming_user_and_keys() {
    let fx = Fixture::new();
    let other = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let sim = start(vec![SimHost::new("mx1", other.public_key().clone(), echo)]).await;
    fx.trust_all(&sim);
    let missing = fx.dir.path().join("id_missing");
    let conn = Connection {
        key_files: vec![fx.key_file.clone(), missing.clone()],
        ..fx.connection(&sim, 0, "deploy")
    };
    let error = Session::connect(&conn, &fx.options()).await.err().unwrap();
    let SshError::AuthFailed { user, detail } = &error else {
        panic!("expected AuthFailed, got {error:?}");
    };
    assert_eq!(user, &format!("deploy@127.0.0.1:{}", sim.port(0)));
    assert!(
        detail.contains(&format!("{} (refused)", fx.key_file.display())),
        "{detail}"
    );
    assert!(detail.contains(&missing.display().to_string()), "{detail}");
    assert_eq!(sim.stats().auth_accepted, 0);
}

#[tokio::test]
async fn stdout_lines_stream_in_order_before_the_command_ends() {
    let fx = Fixture::new();
    let sim = start(vec![SimHost::new("mx1", fx.public(), |_: &SimCommand| {
        SimReply::new("one\ntwo\nthree\n", "", 0)
    })
    .with_line_interval(Duration::from_millis(400))])
    .await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let sink = seen.clone();
    let mut on_line = move |line: &str| {
        sink.lock()
            .unwrap()
            .push((line.to_string(), Instant::now()))
    };
    let output = session.run_script("true", &mut on_line).await.unwrap();
    let finished = Instant::now();
    let seen = seen.lock().unwrap();
    let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(lines, ["one", "two", "three"]);
    assert_eq!(output.stdout, b"one\ntwo\nthree\n");
    // Two intervals separate the first line from the last: it was seen as it came.
    let first_early = finished - seen[0].1;
    assert!(first_early >= Duration::from_millis(400), "{first_early:?}");
}

#[tokio::test]
async fn an_exit_status_sent_before_the_output_loses_nothing() {
    let fx = Fixture::new();
    let sim = start(vec![SimHost::new("mx1", fx.public(), |_: &SimCommand| {
        SimReply::new("late output\n", "late error\n", 4)
    })
    .with_fault(Fault::ExitStatusFirst)])
    .await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    let output = session.run_script("true", &mut |_| {}).await.unwrap();
    assert_eq!(output.stdout, b"late output\n");
    assert_eq!(output.stderr, b"late error\n");
    assert_eq!(output.exit_status, Some(4));
}

#[tokio::test]
async fn a_login_shell_that_cannot_take_an_inline_script_gets_it_on_stdin() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx).refusing_inline_scripts()]).await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    let (lines, mut on_line) = collect_lines();
    let output = session
        .run_script("echo one\n", &mut on_line)
        .await
        .unwrap();
    assert_eq!(output.stdout, guard_stdin("echo one\n").as_bytes());
    assert_eq!(output.exit_status, Some(0));
    // The refused attempt printed nothing the caller sees.
    assert_eq!(
        lines.lock().unwrap().len(),
        3,
        "{:?}",
        lines.lock().unwrap()
    );
    assert_eq!(session.round_trips(), 2);
    // The connection remembers: the next script goes on stdin at once.
    session.run_script("echo two\n", &mut |_| {}).await.unwrap();
    assert_eq!(session.round_trips(), 3);
    let ways: Vec<bool> = sim.commands().iter().map(|c| c.inline).collect();
    assert_eq!(ways, [true, false, false]);
}

#[tokio::test]
async fn a_noisy_shell_startup_file_does_not_run_the_script_twice() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx).with_startup_noise("Welcome to mx1")]).await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    let (lines, mut on_line) = collect_lines();
    let output = session
        .run_script("echo one\n", &mut on_line)
        .await
        .unwrap();
    // what the script printed, nothing before it
    assert_eq!(output.stdout, guard_stdin("echo one\n").as_bytes());
    assert_eq!(lines.lock().unwrap().len(), 3);
    assert_eq!(session.round_trips(), 1);
    assert_eq!(sim.commands().len(), 1, "the script ran twice");
    // and the private way never puts the script in the command line
    session
        .run_script_private("echo secret\n", &mut |_| {})
        .await
        .unwrap();
    let last = sim.commands().pop().unwrap();
    assert!(!last.inline && last.command == "/bin/sh -s", "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_flow_both_ways() {
    let fx = Fixture::new();
    let sim = start(vec![SimHost::new(
        "mx1",
        fx.public(),
        |cmd: &SimCommand| {
            let mut stdout = vec![b'o'; 16 << 20];
            stdout.push(b'\n');
            SimReply::new(stdout, cmd.stdin.clone(), 0)
        },
    )])
    .await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    let script = "#".repeat(4 << 20);
    let mut lines = 0;
    let output = session
        .run_script(&script, &mut |_| lines += 1)
        .await
        .unwrap();
    assert_eq!(output.stdout.len(), (16 << 20) + 1);
    assert_eq!(lines, 1);
    assert_eq!(output.stderr, guard_stdin(&script).as_bytes());
}

#[tokio::test]
async fn become_wraps_commands_in_sudo_for_non_root_users_only() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx)]).await;
    fx.trust_all(&sim);
    let deploy = Connection {
        become_root: true,
        ..fx.connection(&sim, 0, "deploy")
    };
    let session = Session::connect(&deploy, &fx.options()).await.unwrap();
    let output = session.run_script("id -u\n", &mut |_| {}).await.unwrap();
    assert_eq!(output.stdout, guard_stdin("id -u\n").as_bytes());
    let root = Connection {
        become_root: true,
        ..fx.connection(&sim, 0, "root")
    };
    let session = Session::connect(&root, &fx.options()).await.unwrap();
    session.run_script("id -u\n", &mut |_| {}).await.unwrap();

    let commands: Vec<(String, String)> = sim
        .commands()
        .into_iter()
        .map(|c| (c.user, c.command))
        .collect();
    let expected = [("deploy", "sudo -n /bin/sh -s"), ("root", "/bin/sh -s")]
        .map(|(u, c)| (u.to_string(), c.to_string()));
    assert_eq!(commands, expected);
}

#[tokio::test]
async fn sudo_wanting_a_password_is_a_clear_error() {
    let fx = Fixture::new();
    let sim = start(vec![SimHost::new(
        "mx1",
        fx.public(),
        |cmd: &SimCommand| {
            if cmd.command.starts_with("sudo -n") {
                SimReply::new("", "sudo: a password is required\n", 1)
            } else {
                SimReply::new("", "", 0)
            }
        },
    )])
    .await;
    fx.trust_all(&sim);
    let conn = Connection {
        become_root: true,
        ..fx.connection(&sim, 0, "deploy")
    };
    let session = Session::connect(&conn, &fx.options()).await.unwrap();
    let error = session.run_script("true", &mut |_| {}).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "sudo requires a password for deploy on 127.0.0.1: allow NOPASSWD for postfleet, or \
         connect as root"
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable_at_once() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx).with_fault(Fault::Refuse)]).await;
    let started = Instant::now();
    let error = Session::connect(&fx.connection(&sim, 0, "root"), &fx.options())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, SshError::Unreachable(_)), "{error:?}");
    assert!(
        error.to_string().contains(&sim.port(0).to_string()),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_host_that_never_handshakes_times_out_on_connect_timeout() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx).with_fault(Fault::HangHandshake)]).await;
    let options = SshOptions {
        connect_timeout: Duration::from_millis(800),
        ..fx.options()
    };
    let started = Instant::now();
    let error = Session::connect(&fx.connection(&sim, 0, "root"), &options)
        .await
        .err()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(matches!(error, SshError::Unreachable(_)), "{error:?}");
    assert!(
        error.to_string().contains("no SSH handshake within"),
        "{error}"
    );
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(sim.stats().connections_accepted, 1);
}

#[tokio::test]
async fn a_connection_dropped_mid_command_is_an_error_not_a_hang() {
    let fx = Fixture::new();
    let sim = start(vec![SimHost::new("mx1", fx.public(), |_: &SimCommand| {
        SimReply::new("partial output that never ends\n".repeat(100), "", 0)
    })
    .with_fault(Fault::DropMidCommand)])
    .await;
    fx.trust_all(&sim);
    let session = fx.root_session(&sim).await;
    let started = Instant::now();
    let error = session.run_script("true", &mut |_| {}).await.unwrap_err();
    assert!(matches!(error, SshError::Disconnected(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_host_that_goes_silent_is_noticed_by_keepalives() {
    let fx = Fixture::new();
    let sim = start(vec![host("mx1", &fx).with_fault(Fault::FreezeMidCommand)]).await;
    fx.trust_all(&sim);
    let options = SshOptions {
        keepalive_interval: Duration::from_millis(500),
        keepalive_max: 2,
        command_timeout: Duration::from_secs(60),
        ..fx.options()
    };
    let session = Session::connect(&fx.connection(&sim, 0, "root"), &options)
        .await
        .unwrap();
    let started = Instant::now();
    let error = session.run_script("true", &mut |_| {}).await.unwrap_err();
    let SshError::Disconnected(why) = &error else {
        panic!("expected Disconnected, got {error:?}");
    };
    assert!(why.contains("keepalive"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_command_times_out_on_command_timeout() {
    let fx = Fixture::new();
    let sim = start(vec![
        host("mx1", &fx).with_fault(Fault::DelayReplies(Duration::from_secs(30)))
    ])
    .await;
    fx.trust_all(&sim);
    let options = SshOptions {
        command_timeout: Duration::from_millis(500),
        ..fx.options()
    };
    let session = Session::connect(&fx.connection(&sim, 0, "root"), &options)
        .await
        .unwrap();
    let started = Instant::now();
    let error = session
        .run_script("sleep 30", &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(error, SshError::Timeout(Duration::from_millis(500)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_one_connection_within_the_channel_bound() {
    let fx = Fixture::new();
    let sim = start(vec![
        host("mx1", &fx).with_fault(Fault::DelayReplies(Duration::from_millis(100)))
    ])
    .await;
    fx.trust_all(&sim);
    let session = Arc::new(fx.root_session(&sim).await);
    let runs = (0..20).map(|i| {
        let session = session.clone();
        tokio::spawn(async move {
            let script = format!("echo {i}\n");
            let output = session.run_script(&script, &mut |_| {}).await.unwrap();
            assert_eq!(output.stdout, guard_stdin(&script).as_bytes());
        })
    });
    for run in runs.collect::<Vec<_>>() {
        run.await.unwrap();
    }
    assert_eq!(session.round_trips(), 20);
    let stats = sim.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.commands, 20);
    assert!(stats.peak_channels_per_connection >= 2, "{stats:?}");
    // Eight commands end together and their slots linger: new opens were refused, and retried.
    assert!(stats.channels_refused >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_is_read_once_for_many_hosts() {
    let fx = Fixture::new();
    let hosts = (0..20).map(|i| host(&format!("mx{i}"), &fx)).collect();
    let sim = start(hosts).await;
    fx.trust_all(&sim);
    let options = fx.options();
    let connects = (0..sim.len()).map(|i| {
        let conn = fx.connection(&sim, i, "root");
        let options = options.clone();
        tokio::spawn(async move { Session::connect(&conn, &options).await.map(|_| ()) })
    });
    for connect in connects.collect::<Vec<_>>() {
        connect.await.unwrap().unwrap();
    }
    assert_eq!(options.keys.files_read(), 1);
    assert_eq!(sim.stats().auth_accepted, 20);
}

/// Peak resident memory of this process (kB), from /proc.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 1000 simulated hosts, takes a while in a debug build"]
async fn thousand_concurrent_connections() {
    let hosts = std::env::var("POSTFLEET_SIM_HOSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let fx = Fixture::new();
    let started = Instant::now();
    let sim = start((0..hosts).map(|i| host(&format!("h{i}"), &fx)).collect()).await;
    fx.trust_all(&sim);
    let listening = started.elapsed();
    let rss_before = peak_rss_kb();
    let options = SshOptions {
        connect_timeout: Duration::from_secs(600),
        command_timeout: Duration::from_secs(600),
        ..fx.options()
    };
    let started = Instant::now();
    Session::connect(&fx.connection(&sim, 0, "root"), &options)
        .await
        .unwrap()
        .close()
        .await;
    let alone = started.elapsed();
    let started = Instant::now();
    let connects = (0..sim.len()).map(|i| {
        let conn = fx.connection(&sim, i, "root");
        let options = options.clone();
        tokio::spawn(async move {
            let session = Session::connect(&conn, &options).await?;
            let output = session.run_script("facts\n", &mut |_| {}).await?;
            Ok::<_, SshError>((session, output))
        })
    });
    let mut sessions = Vec::new();
    for connect in connects.collect::<Vec<_>>() {
        let (session, output) = connect.await.unwrap().unwrap();
        assert_eq!(output.stdout, guard_stdin("facts\n").as_bytes());
        sessions.push(session);
    }
    let connected = started.elapsed();
    let stats = sim.stats();
    assert_eq!(stats.auth_accepted, hosts + 1);
    assert!(stats.connections_open >= hosts, "{stats:?}");
    let started = Instant::now();
    for session in &sessions {
        runs_true(session).await;
    }
    let sequential_commands = started.elapsed();
    println!(
        "{hosts} hosts: listeners up in {listening:?}; one connect+auth alone: {alone:?}; \
         connect+auth+1 script on all concurrently: {connected:?} ({:?}/host); then 1 command \
         on each in turn: {sequential_commands:?}; peak RSS {} MiB (before connecting {} MiB); \
         key files read: {}",
        connected / hosts as u32,
        peak_rss_kb() / 1024,
        rss_before / 1024,
        options.keys.files_read()
    );
    for session in sessions {
        session.close().await;
    }
}
