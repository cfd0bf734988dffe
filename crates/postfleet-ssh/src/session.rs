//! One authenticated russh connection per host; every command is one exec channel on it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::{Algorithm, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Disconnect, Preferred};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::auth::{self, Sources};
use super::known_hosts::{self, Verdict};
use super::quickack::QuickAck;
use super::script;
use super::{ExecOutput, HostKeyPolicy, SshError, SshOptions, Target};

/// OpenSSH's `MaxSessions` is 10 per connection: stay below it.
pub const CHANNELS_PER_CONNECTION: usize = 8;

/// Output kept per stream of one command; a command that prints more is cut off with an
/// error rather than exhausting memory.
pub const MAX_OUTPUT_BYTES: usize = 256 << 20;

/// What the russh session task learned that its caller needs for a precise error.
#[derive(Default)]
struct Findings {
    host_key_problem: Option<SshError>,
    lost: Option<String>,
}

struct ClientHandler {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    policy: HostKeyPolicy,
    findings: Arc<Mutex<Findings>>,
}

impl ClientHandler {
    fn judge(&self, key: &russh::keys::PublicKey) -> Result<(), SshError> {
        let name = known_hosts::host_entry_name(&self.address, self.port);
        let file = self.known_hosts.display().to_string();
        let fingerprint = format!(
            "{} {}",
            key.algorithm().as_str(),
            known_hosts::fingerprint(key)
        );
        let io_error = |e: std::io::Error| SshError::Other(format!("known_hosts {file}: {e}"));
        let verdict = known_hosts::check(&self.known_hosts, &self.address, self.port, key)
            .map_err(io_error)?;
        if let Verdict::Unknown { .. } = verdict {
            let authorities =
                known_hosts::cert_authority_lines(&self.known_hosts, &self.address, self.port);
            if !authorities.is_empty() {
                let lines: Vec<String> = authorities.iter().map(usize::to_string).collect();
                return Err(SshError::HostCertificateMissing {
                    host: name,
                    fingerprint,
                    known_hosts: file,
                    lines: lines.join(", "),
                });
            }
        }
        match verdict {
            Verdict::Known { .. } => Ok(()),
            Verdict::Changed { line } => Err(SshError::HostKeyChanged {
                host: name,
                fingerprint,
                known_hosts: format!("{file}:{line}"),
            }),
            Verdict::Revoked { line } => Err(SshError::Other(format!(
                "host key of {name} ({fingerprint}) is marked @revoked in {file}:{line}: refusing \
                 to connect"
            ))),
            // We asked for the known types first: a host that offers none of them now is not
            // "new", and learning its key would let an impostor in.
            Verdict::Unknown { other_types }
                if self.policy == HostKeyPolicy::AcceptNew && !other_types.is_empty() =>
            {
                Err(SshError::Other(format!(
                    "{name} presented a key of another type ({fingerprint}) than the {} key(s) \
                     {file} has for it: not learning it. If the host's keys really changed, \
                     check the fingerprint and add the key by hand",
                    other_types.join(", ")
                )))
            }
            Verdict::Unknown { .. } if self.policy == HostKeyPolicy::AcceptNew => {
                match known_hosts::learn(&self.known_hosts, &self.address, self.port, key)
                    .map_err(io_error)?
                {
                    Verdict::Known { .. } => Ok(()),
                    // Another connection learned a different key for this name meanwhile.
                    Verdict::Changed { line } => Err(SshError::HostKeyChanged {
                        host: name,
                        fingerprint,
                        known_hosts: format!("{file}:{line}"),
                    }),
                    other => Err(SshError::Other(format!(
                        "could not learn the host key of {name} into {file}: {other:?}"
                    ))),
                }
            }
            Verdict::Unknown { .. } => Err(SshError::HostKeyUnknown {
                host: name,
                fingerprint,
                known_hosts: file,
            }),
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            PublicKeyOrCertificate::Certificate(cert) => known_hosts::judge_host_certificate(
                &self.known_hosts,
                &self.address,
                self.port,
                cert,
            ),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(problem) => {
                self.findings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .host_key_problem = Some(problem);
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let description = match &reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                format!("the server closed the connection ({})", info.message)
            }
            DisconnectReason::Error(russh::Error::KeepaliveTimeout) => {
                "the server stopped answering keepalives".to_string()
            }
            DisconnectReason::Error(e) => e.to_string(),
        };
        self.findings.lock().unwrap_or_else(|p| p.into_inner()).lost = Some(description);
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// An authenticated connection to one host.
pub struct Session {
    handle: Handle<ClientHandler>,
    findings: Arc<Mutex<Findings>>,
    /// `user@address:port`, for messages.
    target: String,
    user: String,
    address: String,
    become_root: bool,
    command_timeout: Duration,
    channel_slots: Semaphore,
    round_trips: AtomicU32,
    /// Scripts travel inside the exec request until the login shell shows it cannot take them.
    inline_works: AtomicBool,
}

impl Session {
    /// Connects, checks the host key, authenticates (agent, then key files). TCP connect and
    /// handshake must finish within the connect timeout, and so must authentication (time
    /// spent asking for a key's passphrase not counted).
    pub async fn connect(conn: &Target, opts: &SshOptions) -> Result<Session, SshError> {
        let address = format!("{}:{}", conn.address, conn.port);
        let timeout = conn.connect_timeout.unwrap_or(opts.connect_timeout);
        let deadline = Instant::now() + timeout;
        let connecting = tokio::net::TcpStream::connect((conn.address.as_str(), conn.port));
        let tcp = tokio::time::timeout_at(deadline, connecting)
            .await
            .map_err(|_| {
                SshError::Unreachable(format!("{address}: no TCP connection within {timeout:?}"))
            })?
            .map_err(|e| SshError::Unreachable(format!("{address}: {e}")))?;
        tcp.set_nodelay(true).ok();
        Session::handshake(QuickAck::new(tcp), conn, opts, deadline).await
    }

    /// Connects to `conn` through this session's host (a jump host, OpenSSH's ProxyJump):
    /// one `direct-tcpip` channel of this connection carries the new one, however many
    /// hosts go through it.
    pub async fn connect_via(&self, conn: &Target, opts: &SshOptions) -> Result<Session, SshError> {
        let address = format!("{}:{}", conn.address, conn.port);
        let timeout = conn.connect_timeout.unwrap_or(opts.connect_timeout);
        let deadline = Instant::now() + timeout;
        let opening = self.handle.channel_open_direct_tcpip(
            conn.address.clone(),
            u32::from(conn.port),
            "127.0.0.1",
            0,
        );
        let channel = tokio::time::timeout_at(deadline, opening)
            .await
            .map_err(|_| {
                SshError::Unreachable(format!(
                    "{address} through {}: no channel within {timeout:?}",
                    self.target
                ))
            })?
            .map_err(|e| {
                SshError::Unreachable(format!(
                    "{address} through {}: the jump host refused to connect onwards ({e})",
                    self.target
                ))
            })?;
        Session::handshake(channel.into_stream(), conn, opts, deadline).await
    }

    /// The SSH handshake, host key check and authentication on an open byte stream.
    async fn handshake<S>(
        stream: S,
        conn: &Target,
        opts: &SshOptions,
        deadline: Instant,
    ) -> Result<Session, SshError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let address = format!("{}:{}", conn.address, conn.port);
        let primary = conn
            .known_hosts
            .clone()
            .unwrap_or_else(|| opts.default_known_hosts.clone());
        let mut files = vec![primary.clone()];
        files.extend(conn.extra_known_hosts.iter().cloned());
        let known_hosts = known_hosts::deciding_file(&files, &conn.address, conn.port)
            .cloned()
            .unwrap_or(primary);
        let findings = Arc::new(Mutex::new(Findings::default()));
        let handler = ClientHandler {
            address: conn.address.clone(),
            port: conn.port,
            known_hosts: known_hosts.clone(),
            policy: conn.host_key_policy.unwrap_or(opts.host_key_policy),
            findings: findings.clone(),
        };
        let config = Arc::new(client::Config {
            keepalive_interval: Some(conn.keepalive_interval.unwrap_or(opts.keepalive_interval)),
            keepalive_max: opts.keepalive_max,
            nodelay: true,
            preferred: Preferred {
                key: host_key_preference(&known_hosts::known_algorithms(
                    &known_hosts,
                    &conn.address,
                    conn.port,
                ))
                .into(),
                host_key_certificates: known_hosts::certificate_algorithms(
                    &known_hosts,
                    &conn.address,
                    conn.port,
                )
                .into(),
                compression: COMPRESSION.into(),
                ..Preferred::default()
            },
            ..client::Config::default()
        });
        let handshake = client::connect_stream(config, stream, handler);
        let mut handle = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| {
                SshError::Unreachable(format!(
                    "{address}: connected but no SSH handshake within the connect timeout"
                ))
            })?
            .map_err(|e| {
                let mut found = findings.lock().unwrap_or_else(|p| p.into_inner());
                match found.host_key_problem.take() {
                    Some(problem) => problem,
                    None => SshError::Unreachable(format!("{address}: SSH handshake failed: {e}")),
                }
            })?;

        let home = super::home_dir();
        let key_files = auth::key_files(&conn.key_files, home.as_deref());
        let sources = Sources {
            agent_socket: match &conn.agent {
                super::Agent::FromOptions => opts.agent_socket.as_deref(),
                super::Agent::Off => None,
                super::Agent::Socket(path) => Some(path.as_path()),
            },
            key_files: &key_files,
            certificate_files: &conn.certificate_files,
            identities_only: conn.identities_only,
            keys: &opts.keys,
        };
        let target = format!("{}@{address}", conn.user);
        auth::authenticate(&mut handle, &conn.user, sources, deadline)
            .await
            .map_err(|e| match e {
                SshError::AuthFailed { user, detail } => SshError::AuthFailed {
                    user: format!("{user}@{address}"),
                    detail,
                },
                SshError::Unreachable(why) => SshError::Unreachable(format!("{address}: {why}")),
                other => other,
            })?;

        Ok(Session {
            handle,
            findings,
            target,
            user: conn.user.clone(),
            address: conn.address.clone(),
            become_root: conn.become_root && conn.user != "root",
            command_timeout: opts.command_timeout,
            channel_slots: Semaphore::new(CHANNELS_PER_CONNECTION),
            round_trips: AtomicU32::new(0),
            inline_works: AtomicBool::new(true),
        })
    }

    /// Runs `script` with `/bin/sh` (through `sudo -n` when the connection becomes root and
    /// the user is not root): inside the exec request when it fits, else on stdin
    /// ([`crate::script`]). `on_line` sees each stdout line as it arrives. A script inside
    /// the exec request is in the remote shell's argv, which every local user of the host
    /// can read and sudo logs: one that carries file contents or secrets goes through
    /// [`Session::run_script_private`].
    pub async fn run_script(
        &self,
        script: &str,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ExecOutput, SshError> {
        if self.inline_works.load(Ordering::Relaxed) {
            if let Some(command) = script::inline_command(script, self.become_root) {
                let mut started = false;
                let mut skip_marker = |line: &str| {
                    if started {
                        on_line(line)
                    } else {
                        // after anything a shell startup file printed, with or without a newline
                        started = line.ends_with(script::STARTED);
                    }
                };
                let shown = "/bin/sh -c (the script inside the exec request)";
                let mut output = self.run(&command, shown, b"", &mut skip_marker).await?;
                let marker = format!("{}\n", script::STARTED);
                // Anywhere: a startup file (~/.bashrc, ~/.zshenv) may have printed first, and
                // the script has run all the same. Only its absence means nothing ran.
                if let Some(at) = find(&output.stdout, marker.as_bytes()) {
                    output.stdout.drain(..at + marker.len());
                    return Ok(output);
                }
                // The login shell did not hand the script to /bin/sh whole: nothing of it
                // ran. Stdin it is, for this connection's every script.
                self.inline_works.store(false, Ordering::Relaxed);
            }
        }
        self.run_script_private(script, on_line).await
    }

    /// Runs `script` on the remote shell's stdin, never in its argv (one round trip more than
    /// [`Session::run_script`]): for scripts that carry file contents or secrets.
    pub async fn run_script_private(
        &self,
        script: &str,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let (command, stdin) = script::stdin_command(script, self.become_root);
        self.run(command, command, stdin.as_bytes(), on_line).await
    }

    /// The connection is gone (the server closed it, or it stopped answering).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Commands run so far on this connection (each is one round trip).
    pub fn round_trips(&self) -> u32 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Says goodbye to the server (bounded: a dead host does not hold this up).
    pub async fn close(self) {
        let goodbye = self
            .handle
            .disconnect(Disconnect::ByApplication, "postfleet done", "en");
        let _ = tokio::time::timeout(Duration::from_secs(2), goodbye).await;
    }

    /// Runs `command` (`shown` in messages) with `stdin`.
    async fn run(
        &self,
        command: &str,
        shown: &str,
        stdin: &[u8],
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let _slot = self
            .channel_slots
            .acquire()
            .await
            .map_err(|_| SshError::Other("session closed".into()))?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.command_timeout;
        let timed_out = || SshError::Timeout(self.command_timeout);
        let channel = self.open_channel(deadline).await?;
        let (mut reader, writer) = channel.split();
        tokio::time::timeout_at(deadline, writer.exec(true, command))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| self.lost(format!("cannot start the command: {e}")))?;

        let feed = async {
            writer.data_bytes(stdin.to_vec()).await?;
            writer.eof().await
        };
        let collect = async {
            let mut output = ExecOutput::default();
            let mut lines = LineSplitter::default();
            let mut refused = false;
            let mut closed = false;
            let mut too_large = false;
            let mut signalled = false;
            tokio::pin!(feed);
            let mut feeding = true;
            loop {
                tokio::select! {
                    // A failed feed (the command exited without reading all of its stdin) is
                    // not an error in itself: the exit status says how it went.
                    _ = &mut feed, if feeding => feeding = false,
                    message = reader.wait() => match message {
                        // The session drops its channels without a Close only when the
                        // connection is gone.
                        None => break,
                        Some(ChannelMsg::Close) => {
                            closed = true;
                            break;
                        }
                        Some(ChannelMsg::Data { data }) => {
                            output.stdout.extend_from_slice(&data);
                            lines.push(&data, on_line);
                        }
                        Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                            output.stderr.extend_from_slice(&data)
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => {
                            output.exit_status = Some(exit_status)
                        }
                        // Leaves exit_status None, as documented.
                        Some(ChannelMsg::ExitSignal { .. }) => signalled = true,
                        Some(ChannelMsg::Failure) => refused = true,
                        Some(_) => {}
                    },
                }
                if output.stdout.len().max(output.stderr.len()) > MAX_OUTPUT_BYTES {
                    too_large = true;
                    break;
                }
            }
            lines.finish(on_line);
            (output, refused, closed, too_large, signalled)
        };
        let collected = tokio::time::timeout_at(deadline, collect).await;
        let (output, refused, closed, too_large, signalled) = match collected {
            Ok(collected) => collected,
            Err(_) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), writer.close()).await;
                return Err(timed_out());
            }
        };
        if too_large {
            let _ = tokio::time::timeout(Duration::from_secs(1), writer.close()).await;
            return Err(SshError::Other(format!(
                "{}: `{shown}` printed more than {} MiB: stopped",
                self.target,
                MAX_OUTPUT_BYTES >> 20
            )));
        }
        if refused {
            return Err(SshError::Other(format!(
                "{} refused to run `{shown}`",
                self.target
            )));
        }
        if output.exit_status.is_none() && !signalled && (!closed || self.handle.is_closed()) {
            return Err(self.lost("the connection closed before the command finished".into()));
        }
        if self.become_root {
            self.check_sudo(&output)?;
        }
        Ok(output)
    }

    /// Opens a session channel. OpenSSH frees a finished session's MaxSessions slot only on a
    /// later pass of its main loop, so an open sent right after a close may be refused even
    /// below the limit: such refusals are retried for a short while.
    async fn open_channel(&self, deadline: Instant) -> Result<Channel<client::Msg>, SshError> {
        let mut pause = Duration::from_millis(5);
        let mut retries_left = 8;
        loop {
            let opening = self.handle.channel_open_session();
            match tokio::time::timeout_at(deadline, opening).await {
                Err(_) => return Err(SshError::Timeout(self.command_timeout)),
                Ok(Ok(channel)) => return Ok(channel),
                Ok(Err(russh::Error::ChannelOpenFailure(reason))) if !self.handle.is_closed() => {
                    if retries_left == 0 || Instant::now() + pause >= deadline {
                        return Err(SshError::Other(format!(
                            "{}: the server keeps refusing new channels ({reason:?}); is its \
                             MaxSessions below {CHANNELS_PER_CONNECTION}?",
                            self.target
                        )));
                    }
                    retries_left -= 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Ok(Err(e)) => return Err(self.lost(format!("cannot open a channel: {e}"))),
            }
        }
    }

    /// A `sudo -n` that could not run the command at all becomes an error that says what to do.
    fn check_sudo(&self, output: &ExecOutput) -> Result<(), SshError> {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let sudo_said = |text: &str| {
            stderr
                .lines()
                .any(|l| l.starts_with("sudo:") && l.contains(text))
        };
        if output.exit_status == Some(1)
            && (sudo_said("a password is required") || sudo_said("a terminal is required"))
        {
            return Err(SshError::SudoPasswordRequired {
                user: self.user.clone(),
                host: self.address.clone(),
            });
        }
        if output.exit_status == Some(127)
            && stderr.contains("sudo")
            && stderr.contains("not found")
        {
            return Err(SshError::Other(format!(
                "sudo is not installed on {}: install it, or connect as root",
                self.address
            )));
        }
        Ok(())
    }

    /// The connection is gone (or going): say why when the session task knows.
    fn lost(&self, fallback: String) -> SshError {
        let found = self.findings.lock().unwrap_or_else(|p| p.into_inner());
        let why = found.lost.clone().unwrap_or(fallback);
        SshError::Disconnected(format!("{}: {why}", self.target))
    }
}

/// Compression, wanted first: the facts probe prints ~60 KB of base64 (config files), which
/// deflates to a fraction; over a long round trip that is fewer windows of TCP slow start.
/// `zlib@openssh.com` starts after authentication (nothing is compressed before the peer is
/// known), as OpenSSH's sshd offers it by default.
const COMPRESSION: &[russh::compression::Name] = &[
    russh::compression::ZLIB_LEGACY,
    russh::compression::ZLIB,
    russh::compression::NONE,
];

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Host key algorithms to ask for: those known_hosts already has for the host first.
fn host_key_preference(known: &[Algorithm]) -> Vec<Algorithm> {
    let all = Preferred::DEFAULT.key.to_vec();
    let rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
    let is_known = |a: &Algorithm| known.iter().any(|k| k == a || (rsa(k) && rsa(a)));
    let (mut first, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(is_known);
    first.extend(rest);
    first
}

/// Cuts stdout into lines as it arrives, across packet boundaries.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Looks at each byte once: a long line arriving in many packets is not rescanned.
    fn push(&mut self, data: &[u8], on_line: &mut (dyn FnMut(&str) + Send)) {
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..end]);
            let text = String::from_utf8_lossy(&self.pending);
            on_line(text.strip_suffix('\r').unwrap_or(&text));
            self.pending.clear();
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
    }

    /// The last line, when the output does not end with a newline.
    fn finish(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            on_line(&String::from_utf8_lossy(&rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::EcdsaCurve;

    #[test]
    fn lines_are_split_across_packets() {
        let mut seen = Vec::new();
        let mut record = |l: &str| seen.push(l.to_string());
        let mut splitter = LineSplitter::default();
        splitter.push(b"one\ntw", &mut record);
        splitter.push(b"o\r\n\nthr", &mut record);
        splitter.push(b"ee", &mut record);
        splitter.finish(&mut record);
        assert_eq!(seen, ["one", "two", "", "three"]);
    }

    #[test]
    fn a_long_line_in_many_packets_is_not_rescanned() {
        let mut lines = 0;
        let mut count = |_: &str| lines += 1;
        let mut splitter = LineSplitter::default();
        let packet = vec![b'x'; 32 << 10];
        let started = std::time::Instant::now();
        for _ in 0..640 {
            splitter.push(&packet, &mut count);
        }
        splitter.push(b"\n", &mut count);
        // Rescanning the pending 20 MiB on every packet takes tens of seconds.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(lines, 1);
    }

    #[test]
    fn accept_new_never_learns_a_plain_key_for_a_host_with_a_ca() {
        use russh::keys::ssh_key::private::Ed25519Keypair;
        let key = |seed: u8| {
            russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
                .public_key()
                .clone()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let ca = format!("@cert-authority mx* {}\n", key(1).to_openssh().unwrap());
        std::fs::write(&path, &ca).unwrap();
        let handler = ClientHandler {
            address: "mx1".into(),
            port: 22,
            known_hosts: path.clone(),
            policy: HostKeyPolicy::AcceptNew,
            findings: Default::default(),
        };
        let error = handler.judge(&key(2)).unwrap_err();
        assert!(
            matches!(&error, SshError::HostCertificateMissing { lines, .. } if lines == "1"),
            "{error:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            ca,
            "nothing learned"
        );
        // A host no CA line covers is still learned.
        let other = ClientHandler {
            address: "web1".into(),
            ..handler
        };
        assert_eq!(other.judge(&key(2)), Ok(()));
    }

    #[test]
    fn known_key_types_are_asked_for_first() {
        let order = host_key_preference(&[Algorithm::Rsa { hash: None }]);
        assert!(order[..3]
            .iter()
            .all(|a| matches!(a, Algorithm::Rsa { .. })));
        assert_eq!(order.len(), Preferred::DEFAULT.key.len());
        let order = host_key_preference(&[Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        }]);
        assert_eq!(
            order[0],
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
        );
        assert_eq!(order[1], Algorithm::Ed25519);
        assert_eq!(host_key_preference(&[]), Preferred::DEFAULT.key.to_vec());
    }
}
