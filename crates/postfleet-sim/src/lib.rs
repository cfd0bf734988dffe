//! An in-process SSH server (russh) on 127.0.0.1 that plays a fleet of hosts, for fault
//! injection tests and controller benchmarks.
//!
//! Each simulated host gets its own listener on an ephemeral port of 127.0.0.1, so it looks to
//! the client like a real host: its own `[127.0.0.1]:PORT` known_hosts entry, its own host key
//! and fault, nothing to pick per connection. A listener is one socket and one idle task, so a
//! thousand hosts cost a thousand file descriptors and little else.
//!
//! ```no_run
//! # async fn demo(client_key: russh::keys::PublicKey) -> std::io::Result<()> {
//! use postfleet_sim::{SimHost, SimReply, Simulator};
//! let hosts = (0..3)
//!     .map(|i| {
//!         SimHost::new(format!("mx{i}"), client_key.clone(), |cmd| {
//!             SimReply::new(format!("ran {}\n", cmd.command), "", 0)
//!         })
//!     })
//!     .collect::<Vec<_>>();
//! let sim = Simulator::start(hosts).await?;
//! let conn = sim.connection(0, "root"); // address 127.0.0.1, the host's port
//! let known_hosts_text = sim.known_hosts(); // one line per host
//! # Ok(()) }
//! ```
//!
//! What a host does with a command is up to its handler, `Fn(&SimCommand) -> SimReply`: it sees
//! the exec command line (e.g. `/bin/sh -s` or `sudo -n /bin/sh -s`) and everything sent on
//! stdin until EOF. Faults ([`Fault`]) make a host refuse connections, hang before the
//! handshake, answer late, drop the connection or go silent mid-command, or send the exit
//! status before the output.
//!
//! Everything is bounded: connections ([`SimOptions::max_connections`]), channels per connection
//! (10, OpenSSH's `MaxSessions`), stdin per command, the logs, and the time an idle or frozen
//! connection is kept ([`SimOptions::idle_timeout`]). Dropping the [`Simulator`] (or
//! [`Simulator::shutdown`]) closes every listener and connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Preferred};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use postfleet_ssh::Target;

/// One command as the simulated host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCommand {
    /// Name of the simulated host.
    pub host: String,
    pub user: String,
    /// The exec request's command line. A script sent inside it
    /// ([`postfleet_ssh::script::inline_command`]) is shown as the same script sent on stdin
    /// would be (`/bin/sh -s`, the script in `stdin`), so a handler answers by script
    /// whichever way it came; `inline` says which.
    pub command: String,
    /// Everything the client sent on stdin before EOF.
    pub stdin: Vec<u8>,
    /// The script came inside the exec request.
    pub inline: bool,
}

impl SimCommand {
    /// Reads a script sent inside the exec request as if it had come on stdin.
    fn new(host: String, user: String, command: String, stdin: Vec<u8>) -> SimCommand {
        match postfleet_ssh::script::inline_script(&command) {
            Some((script, sudo)) => {
                let (command, stdin) = postfleet_ssh::script::stdin_command(&script, sudo);
                SimCommand {
                    host,
                    user,
                    command: command.to_string(),
                    stdin: stdin.into_bytes(),
                    inline: true,
                }
            }
            None => SimCommand {
                host,
                user,
                command,
                stdin,
                inline: false,
            },
        }
    }
}

/// What a simulated command answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReply {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_status: u32,
}

impl SimReply {
    pub fn new(stdout: impl Into<Vec<u8>>, stderr: impl Into<Vec<u8>>, exit_status: u32) -> Self {
        SimReply {
            stdout: stdout.into(),
            stderr: stderr.into(),
            exit_status,
        }
    }
}

/// A successful authentication as the simulated host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAuth {
    pub host: String,
    pub user: String,
    /// Signature algorithm the client used, e.g. `ssh-ed25519` or `rsa-sha2-512`.
    pub algorithm: String,
}

pub type CommandHandler = Arc<dyn Fn(&SimCommand) -> SimReply + Send + Sync>;

/// Misbehaviour of one simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens on the host's port (it is bound, so it stays reserved): connecting is
    /// refused.
    Refuse,
    /// TCP is accepted but the server never says a word of SSH.
    HangHandshake,
    /// Every command's reply starts this late.
    DelayReplies(Duration),
    /// Sends the first half of the output, then closes the TCP connection without a goodbye
    /// (how much of that half reaches the client before the close is not guaranteed).
    DropMidCommand,
    /// Stops reading and writing once a command arrives, keepalives included, like a host that
    /// lost power: only the client's keepalives or timeouts can notice.
    FreezeMidCommand,
    /// Sends the exit status first, then the output, EOF and close.
    ExitStatusFirst,
}

/// One simulated host.
#[derive(Clone)]
pub struct SimHost {
    pub name: String,
    pub host_key: PrivateKey,
    /// Client keys allowed in, for any user.
    pub authorized_keys: Vec<PublicKey>,
    pub handler: CommandHandler,
    pub fault: Option<Fault>,
    /// When non-zero, stdout is sent one line at a time, this far apart.
    pub line_interval: Duration,
    /// The user's login shell cannot read a script inside the exec request (as csh could
    /// not): such a command fails without running, as a real one would.
    pub refuses_inline: bool,
    /// What the user's shell startup files print before every command (a noisy ~/.bashrc).
    pub startup_noise: Vec<u8>,
}

impl SimHost {
    /// A well-behaved host whose ed25519 host key is derived from `name` (the same name gives
    /// the same key in every run, so known_hosts files can be prepared once).
    pub fn new(
        name: impl Into<String>,
        authorized_key: PublicKey,
        handler: impl Fn(&SimCommand) -> SimReply + Send + Sync + 'static,
    ) -> SimHost {
        let name = name.into();
        SimHost {
            host_key: host_key_for(&name),
            name,
            authorized_keys: vec![authorized_key],
            handler: Arc::new(handler),
            fault: None,
            line_interval: Duration::ZERO,
            refuses_inline: false,
            startup_noise: Vec::new(),
        }
    }

    pub fn with_startup_noise(mut self, noise: impl Into<Vec<u8>>) -> SimHost {
        self.startup_noise = noise.into();
        self
    }

    pub fn refusing_inline_scripts(mut self) -> SimHost {
        self.refuses_inline = true;
        self
    }

    pub fn with_fault(mut self, fault: Fault) -> SimHost {
        self.fault = Some(fault);
        self
    }

    pub fn with_host_key(mut self, key: PrivateKey) -> SimHost {
        self.host_key = key;
        self
    }

    pub fn with_line_interval(mut self, interval: Duration) -> SimHost {
        self.line_interval = interval;
        self
    }
}

/// The ed25519 host key [`SimHost::new`] gives a host named `name`.
pub fn host_key_for(name: &str) -> PrivateKey {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(b"postfleet simulated host key\0")
        .chain_update(name.as_bytes())
        .finalize()
        .into();
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// Limits of the whole simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Connections open at once over all hosts; more are closed at accept.
    pub max_connections: usize,
    /// A connection silent this long (or frozen, or hung before the handshake) is closed.
    pub idle_timeout: Duration,
    /// Bytes of stdin kept per command; a command sent more fails with exit status 1.
    pub max_stdin: usize,
    /// Entries kept in the command and auth logs (oldest dropped first).
    pub log_limit: usize,
    /// A channel the server closed keeps its MaxSessions slot this long, as with OpenSSH
    /// (which frees it on a later pass of its main loop): clients must cope with refusals.
    pub channel_slot_linger: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            max_connections: 4096,
            idle_timeout: Duration::from_secs(60),
            max_stdin: 16 << 20,
            log_limit: 10_000,
            channel_slot_linger: Duration::from_millis(50),
        }
    }
}

/// Counters over the simulator's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    pub connections_accepted: usize,
    pub connections_open: usize,
    pub peak_connections_open: usize,
    pub auth_accepted: usize,
    pub auth_rejected: usize,
    pub commands: usize,
    /// Most channels open at once on one connection.
    pub peak_channels_per_connection: usize,
    /// Channel opens refused for want of a MaxSessions slot.
    pub channels_refused: usize,
}

/// OpenSSH's default `MaxSessions`: more channels on one connection are refused.
const MAX_CHANNELS_PER_CONNECTION: usize = 10;

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    auth_accepted: AtomicUsize,
    auth_rejected: AtomicUsize,
    commands: AtomicUsize,
    peak_channels: AtomicUsize,
    channels_refused: AtomicUsize,
}

struct Shared {
    options: SimOptions,
    counters: Counters,
    commands: Mutex<VecDeque<SimCommand>>,
    auths: Mutex<VecDeque<SimAuth>>,
    connection_slots: Arc<Semaphore>,
}

impl Shared {
    fn log<T>(&self, log: &Mutex<VecDeque<T>>, entry: T) {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= self.options.log_limit {
            log.pop_front();
        }
        log.push_back(entry);
    }
}

struct HostState {
    host: SimHost,
    config: Arc<server::Config>,
}

/// A running fleet of simulated hosts; see the module documentation.
pub struct Simulator {
    hosts: Vec<Arc<HostState>>,
    ports: Vec<u16>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    /// Ports of refusing hosts: bound, never listening, so nothing else takes them.
    _refusing: Vec<TcpSocket>,
}

impl Simulator {
    /// Starts one listener per host on 127.0.0.1 (ephemeral ports) with default limits.
    pub async fn start(hosts: Vec<SimHost>) -> io::Result<Simulator> {
        Simulator::start_with(hosts, SimOptions::default()).await
    }

    pub async fn start_with(hosts: Vec<SimHost>, options: SimOptions) -> io::Result<Simulator> {
        let shared = Arc::new(Shared {
            connection_slots: Arc::new(Semaphore::new(options.max_connections)),
            options,
            counters: Counters::default(),
            commands: Mutex::new(VecDeque::new()),
            auths: Mutex::new(VecDeque::new()),
        });
        let (shutdown, _) = watch::channel(false);
        let mut simulator = Simulator {
            hosts: Vec::new(),
            ports: Vec::new(),
            shared,
            shutdown,
            listeners: Vec::new(),
            _refusing: Vec::new(),
        };
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        for host in hosts {
            let state = Arc::new(HostState {
                config: Arc::new(server_config(&host, &simulator.shared.options)),
                host,
            });
            let port = if state.host.fault == Some(Fault::Refuse) {
                // A bound socket that never listens: the kernel answers with a reset.
                let socket = TcpSocket::new_v4()?;
                socket.bind(loopback)?;
                let port = socket.local_addr()?.port();
                simulator._refusing.push(socket);
                port
            } else {
                let listener = TcpListener::bind(loopback).await?;
                let port = listener.local_addr()?.port();
                simulator.listeners.push(tokio::spawn(listen(
                    listener,
                    state.clone(),
                    simulator.shared.clone(),
                    simulator.shutdown.subscribe(),
                )));
                port
            };
            simulator.hosts.push(state);
            simulator.ports.push(port);
        }
        Ok(simulator)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        &self.hosts[index].host.name
    }

    pub fn port(&self, index: usize) -> u16 {
        self.ports[index]
    }

    pub fn host_public_key(&self, index: usize) -> PublicKey {
        self.hosts[index].host.host_key.public_key().clone()
    }

    /// How to reach host `index` as `user`: 127.0.0.1 and its port, no key file, no become,
    /// no known_hosts file (set the fields you need).
    pub fn connection(&self, index: usize, user: &str) -> Target {
        Target::new("127.0.0.1", self.port(index), user)
    }

    /// The known_hosts line of host `index`: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self, index: usize) -> String {
        let key = self.host_public_key(index);
        let encoded = key.to_openssh().unwrap_or_default();
        format!("[127.0.0.1]:{} {}", self.port(index), encoded.trim())
    }

    /// known_hosts lines for every host, each ending with a newline.
    pub fn known_hosts(&self) -> String {
        (0..self.len())
            .map(|i| self.known_hosts_line(i) + "\n")
            .collect()
    }

    /// Commands received so far (the most recent [`SimOptions::log_limit`]).
    pub fn commands(&self) -> Vec<SimCommand> {
        let log = self
            .shared
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }

    /// Successful authentications so far (the most recent [`SimOptions::log_limit`]).
    pub fn auths(&self) -> Vec<SimAuth> {
        let log = self.shared.auths.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.shared.counters;
        SimStats {
            connections_accepted: c.accepted.load(Ordering::Relaxed),
            connections_open: c.open.load(Ordering::Relaxed),
            peak_connections_open: c.peak_open.load(Ordering::Relaxed),
            auth_accepted: c.auth_accepted.load(Ordering::Relaxed),
            auth_rejected: c.auth_rejected.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            peak_channels_per_connection: c.peak_channels.load(Ordering::Relaxed),
            channels_refused: c.channels_refused.load(Ordering::Relaxed),
        }
    }

    /// Closes every listener and connection (also done on drop).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        for listener in &self.listeners {
            listener.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn server_config(host: &SimHost, options: &SimOptions) -> server::Config {
    // Key exchanges of the OpenSSH 9.2 on Debian 12 hosts: no ML-KEM hybrid (OpenSSH >= 9.9),
    // so a simulated handshake costs what a real one does.
    let kex: Vec<russh::kex::Name> = Preferred::DEFAULT
        .kex
        .iter()
        .filter(|name| **name != russh::kex::MLKEM768X25519_SHA256)
        .cloned()
        .collect();
    server::Config {
        preferred: Preferred {
            kex: kex.into(),
            ..Preferred::DEFAULT
        },
        keys: vec![host.host_key.clone()],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Constant-time rejection matters against attackers, not in a simulator.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        inactivity_timeout: Some(options.idle_timeout),
        ..server::Config::default()
    }
}

async fn listen(
    listener: TcpListener,
    host: Arc<HostState>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Over the limit: close at once rather than queue without bound.
                    let Ok(slot) = shared.connection_slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    tokio::spawn(serve(tcp, host.clone(), shared.clone(), shutdown.clone(), slot));
                }
                // Out of file descriptors or the like: let connections close, then go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

/// Counts a connection open for as long as it lives.
struct OpenConnection {
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(shared: Arc<Shared>, slot: OwnedSemaphorePermit) -> Self {
        let c = &shared.counters;
        c.accepted.fetch_add(1, Ordering::Relaxed);
        let open = c.open.fetch_add(1, Ordering::Relaxed) + 1;
        c.peak_open.fetch_max(open, Ordering::Relaxed);
        OpenConnection {
            shared,
            _slot: slot,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.shared.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    tcp: TcpStream,
    host: Arc<HostState>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let _open = OpenConnection::new(shared.clone(), slot);
    let idle_timeout = shared.options.idle_timeout;
    if host.host.fault == Some(Fault::HangHandshake) {
        let _ = tokio::time::timeout(idle_timeout, async {
            tokio::select! {
                _ = stopped(&mut shutdown) => {}
                _ = drain_until_closed(tcp) => {}
            }
        })
        .await;
        return;
    }
    // A second handle on the socket to cut it from outside russh's session task.
    let Ok(std_tcp) = tcp.into_std() else { return };
    let Ok(cutter) = std_tcp.try_clone() else {
        return;
    };
    let Ok(tcp) = TcpStream::from_std(std_tcp) else {
        return;
    };
    // russh applies `Config::nodelay` only in its own accept loop; without it every reply
    // waits ~40 ms for Nagle and delayed ACKs.
    let _ = tcp.set_nodelay(true);
    let control = Arc::new(ConnectionControl::default());
    let stream = SimStream {
        inner: tcp,
        control: control.clone(),
    };
    let handler = ConnectionHandler {
        host: host.clone(),
        shared,
        control: control.clone(),
        user: String::new(),
        channels: HashMap::new(),
    };
    let Ok(mut session) = server::run_stream(host.config.clone(), stream, handler).await else {
        return;
    };
    tokio::select! {
        _ = &mut session => {}
        _ = control.cut.notified() => {}
        _ = stopped(&mut shutdown) => {}
    }
    // The session task then reads EOF and ends by itself.
    control.thaw();
    let _ = cutter.shutdown(Shutdown::Both);
}

/// Resolves once the simulator shuts down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn drain_until_closed(mut tcp: TcpStream) {
    let mut sink = [0u8; 1024];
    while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// State of one connection shared by its handler and its reply tasks.
#[derive(Default)]
struct ConnectionControl {
    cut: Notify,
    frozen: AtomicBool,
    reader: Mutex<Option<Waker>>,
    /// Channels counted against the MaxSessions limit. A channel leaves when either side
    /// closes it first (russh tells the handler only about closes the client starts).
    open_channels: Mutex<HashSet<ChannelId>>,
}

impl ConnectionControl {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashSet<ChannelId>> {
        self.open_channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        if let Some(waker) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            waker.wake();
        }
    }
}

/// The TCP stream as russh's session sees it: frozen, reads never complete and writes vanish.
struct SimStream {
    inner: TcpStream,
    control: Arc<ConnectionControl>,
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.frozen.load(Ordering::SeqCst) {
            *this
                .control
                .reader
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            // Re-checked after registering, so a thaw in between is not missed.
            if this.control.frozen.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.control.frozen.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[derive(Default)]
struct PendingCommand {
    command: Option<String>,
    stdin: Vec<u8>,
    overflowed: bool,
}

struct ConnectionHandler {
    host: Arc<HostState>,
    shared: Arc<Shared>,
    control: Arc<ConnectionControl>,
    user: String,
    channels: HashMap<ChannelId, PendingCommand>,
}

impl ConnectionHandler {
    fn authorized(&self, key: &PublicKey) -> bool {
        self.host
            .host
            .authorized_keys
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }
}

impl server::Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.authorized(offer.public_key) {
            Ok(Auth::Accept)
        } else {
            self.shared
                .counters
                .auth_rejected
                .fetch_add(1, Ordering::Relaxed);
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.authorized(key.public_key) {
            self.shared
                .counters
                .auth_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Ok(Auth::reject());
        }
        self.user = user.to_string();
        self.shared
            .counters
            .auth_accepted
            .fetch_add(1, Ordering::Relaxed);
        let auth = SimAuth {
            host: self.host.host.name.clone(),
            user: user.to_string(),
            algorithm: key.algorithm.as_str().to_string(),
        };
        self.shared.log(&self.shared.auths, auth);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Dropping `reply` refuses the channel, as OpenSSH does past MaxSessions.
        let open = {
            let mut open = self.control.channels();
            if open.len() >= MAX_CHANNELS_PER_CONNECTION {
                self.shared
                    .counters
                    .channels_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            open.insert(channel.id());
            open.len()
        };
        self.channels
            .insert(channel.id(), PendingCommand::default());
        self.shared
            .counters
            .peak_channels
            .fetch_max(open, Ordering::Relaxed);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(pending) if pending.command.is_none() => {
                pending.command = Some(String::from_utf8_lossy(data).into_owned());
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(pending) = self.channels.get_mut(&channel) {
            if pending.stdin.len() + data.len() > self.shared.options.max_stdin {
                pending.overflowed = true;
            } else {
                pending.stdin.extend_from_slice(data);
            }
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(pending) = self.channels.remove(&channel) else {
            return Ok(());
        };
        let Some(command) = pending.command else {
            return Ok(());
        };
        let request = SimCommand::new(
            self.host.host.name.clone(),
            self.user.clone(),
            command,
            pending.stdin,
        );
        let overflowed = pending.overflowed;
        self.shared
            .counters
            .commands
            .fetch_add(1, Ordering::Relaxed);
        self.shared.log(&self.shared.commands, request.clone());
        tokio::spawn(answer(
            session.handle(),
            channel,
            self.host.clone(),
            self.control.clone(),
            request,
            overflowed,
            self.shared.options.channel_slot_linger,
        ));
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        self.control.channels().remove(&channel);
        Ok(())
    }
}

/// Runs the host's handler and sends its reply, faults included. Stops at the first send that
/// fails (the connection or channel is gone).
async fn answer(
    handle: server::Handle,
    channel: ChannelId,
    host: Arc<HostState>,
    control: Arc<ConnectionControl>,
    request: SimCommand,
    overflowed: bool,
    slot_linger: Duration,
) -> Option<()> {
    let fault = host.host.fault.clone();
    match fault {
        Some(Fault::FreezeMidCommand) => {
            control.freeze();
            return None;
        }
        Some(Fault::DelayReplies(delay)) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let reply = if overflowed {
        SimReply::new("", "simulator: stdin too large\n", 1)
    } else if request.inline && host.host.refuses_inline {
        SimReply::new("", "Unmatched '.\n", 1)
    } else {
        let mut reply = (host.host.handler)(&request);
        // What the shell prints before the script's own output: its startup files' noise,
        // then, for a script inside the exec request, the wrapper's marker.
        let mut stdout = host.host.startup_noise.clone();
        if request.inline {
            stdout.extend(format!("{}\n", postfleet_ssh::script::STARTED).into_bytes());
        }
        stdout.append(&mut reply.stdout);
        reply.stdout = stdout;
        reply
    };
    let status_first = fault == Some(Fault::ExitStatusFirst);
    if status_first {
        handle
            .exit_status_request(channel, reply.exit_status)
            .await
            .ok()?;
    }
    if fault == Some(Fault::DropMidCommand) {
        let half = reply.stdout[..reply.stdout.len() / 2].to_vec();
        if !half.is_empty() {
            handle.data(channel, half).await.ok()?;
        }
        control.cut.notify_one();
        return None;
    }
    if host.host.line_interval.is_zero() || reply.stdout.is_empty() {
        if !reply.stdout.is_empty() {
            handle.data(channel, reply.stdout).await.ok()?;
        }
    } else {
        for (i, line) in reply.stdout.split_inclusive(|&b| b == b'\n').enumerate() {
            if i > 0 {
                tokio::time::sleep(host.host.line_interval).await;
            }
            handle.data(channel, line.to_vec()).await.ok()?;
        }
    }
    if !reply.stderr.is_empty() {
        handle.extended_data(channel, 1, reply.stderr).await.ok()?;
    }
    if !status_first {
        handle
            .exit_status_request(channel, reply.exit_status)
            .await
            .ok()?;
    }
    handle.eof(channel).await.ok()?;
    handle.close(channel).await.ok()?;
    tokio::time::sleep(slot_linger).await;
    control.channels().remove(&channel);
    Some(())
}
