//! WAN-like latency without netem (not in this kernel): inside a host's network namespace,
//! iptables sends eth0 traffic in both directions to an NFQUEUE, and a delayer process (this
//! module, speaking nfnetlink_queue directly) holds each packet for half the wanted round trip
//! before accepting it. `--queue-bypass` lets traffic flow undelayed if the delayer is gone.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::state::{HostFiles, Names};
use super::sys::{self, ProcRef};

/// Queue number; queues are per network namespace, so every host can use the same one.
const QUEUE: u16 = 0;

fn iptables_rules() -> [Vec<&'static str>; 2] {
    let target = ["-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"];
    let mut incoming = vec!["PREROUTING", "-i", "eth0"];
    incoming.extend(target);
    let mut outgoing = vec!["POSTROUTING", "-o", "eth0"];
    outgoing.extend(target);
    [incoming, outgoing]
}

fn iptables(names: &Names, host: &str, action: &str, rule: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", names.netns_path(host).display()))
        .args(["iptables", "-w", "-t", "mangle", action])
        .args(rule);
    cmd
}

/// Sets a host's added round-trip time (0 removes it).
pub fn set_rtt(names: &Names, host: &str, rtt_ms: u32) -> Result<()> {
    sys::require_tool("iptables", "iptables")?;
    let files = HostFiles::new(names, host);
    for rule in iptables_rules() {
        while sys::run_quiet(&mut iptables(names, host, "-C", &rule)) {
            sys::run(&mut iptables(names, host, "-D", &rule))?;
        }
    }
    if let Some(old) = ProcRef::read(&files.delayer_pid()) {
        old.signal(libc::SIGTERM);
        if !sys::poll_until(Duration::from_secs(3), Duration::from_millis(10), || {
            !old.alive()
        }) {
            old.signal(libc::SIGKILL);
        }
        let _ = std::fs::remove_file(files.delayer_pid());
    }
    if rtt_ms == 0 {
        return Ok(());
    }
    let log = File::create(files.delayer_log())?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("postfleet")
        .args(["lab", "--lab", &names.lab, "delayer", host, "--delay-us"])
        .arg((u64::from(rtt_ms) * 500).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the delayer")?;
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut first_line)?;
    if first_line.trim() != "ready" {
        let _ = child.wait();
        bail!(
            "{host}: the delayer did not start: {}",
            sys::tail(&files.delayer_log(), 5)
        );
    }
    let delayer = ProcRef::of(child.id() as i32)
        .ok_or_else(|| anyhow!("{host}: the delayer exited at once"))?;
    delayer.write(&files.delayer_pid())?;
    for rule in iptables_rules() {
        sys::run(&mut iptables(names, host, "-A", &rule))
            .with_context(|| format!("{host}: cannot add the NFQUEUE rule"))?;
    }
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Body of the hidden `lab delayer` command: enters the host's network namespace, binds the
/// queue, says "ready" on stdout, then delays every queued packet by `delay`.
pub fn delayer_main(names: &Names, host: &str, delay: Duration) -> Result<()> {
    let netns_path = names.netns_path(host);
    let netns =
        File::open(&netns_path).with_context(|| format!("cannot open {}", netns_path.display()))?;
    // SAFETY: setns takes a file descriptor we own and open for the whole call; it changes only this thread's namespace.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot enter {}: {}",
            netns_path.display(),
            std::io::Error::last_os_error()
        );
    }
    let queue = NfQueue::bind(QUEUE)?;
    // SAFETY: an all-zero sigaction is a valid value (no flags, empty mask); the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop_signal as *const () as usize;
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    // Nobody reads stdout any more.
    let devnull = File::options().write(true).open("/dev/null")?;
    // SAFETY: dup2 onto fd 1 with a descriptor we own; no Rust object owns fd 1.
    unsafe { libc::dup2(devnull.as_raw_fd(), 1) };

    let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut buf = vec![0u8; 256 * 1024];
    while !STOP.load(Ordering::SeqCst) {
        let wait = held
            .front()
            .map(|(due, _)| due.saturating_duration_since(Instant::now()));
        queue.wait_readable(wait);
        let now = Instant::now();
        while let Some(len) = queue.recv(&mut buf)? {
            for id in packet_ids(&buf[..len]) {
                held.push_back((now + delay, id));
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, id) = held.pop_front().expect("front exists");
            queue.accept(id)?;
        }
    }
    for (_, id) in held {
        queue.accept(id)?;
    }
    Ok(())
}

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
/// Accept instead of drop when the queue is full; hand over GSO packets unsegmented.
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_CFG_F_GSO: u32 = 4;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_HDRLEN: usize = 16;

/// A netlink message to the queue subsystem, built attribute by attribute.
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, queue: u16) -> Message {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // length, filled in by finish()
        bytes.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // sequence
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        bytes.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]); // nfgenmsg family, version
        bytes.extend_from_slice(&queue.to_be_bytes());
        Message { bytes }
    }

    fn attr(mut self, kind: u16, payload: &[u8]) -> Message {
        let len = 4 + payload.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(payload);
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.bytes.len() as u32;
        self.bytes[..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes
    }
}

/// Netlink messages in a received buffer: (type, payload after the netlink header).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let header = buf.get(offset..offset + NLMSG_HDRLEN)?;
        let len = u32::from_ne_bytes(header[..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(header[4..6].try_into().ok()?);
        let payload = buf.get(offset + NLMSG_HDRLEN..offset + len)?;
        offset += len.max(NLMSG_HDRLEN).next_multiple_of(4);
        Some((kind, payload))
    })
}

/// Attributes after the 4-byte nfgenmsg: (type, payload).
fn attributes(payload: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut offset = 4;
    std::iter::from_fn(move || {
        let header = payload.get(offset..offset + 4)?;
        let len = u16::from_ne_bytes([header[0], header[1]]) as usize;
        let kind = u16::from_ne_bytes([header[2], header[3]]) & 0x3fff;
        let value = payload.get(offset + 4..offset + len.max(4))?;
        offset += len.max(4).next_multiple_of(4);
        Some((kind, value))
    })
}

/// Packet ids of the queued-packet messages in a received buffer.
fn packet_ids(buf: &[u8]) -> Vec<u32> {
    messages(buf)
        .filter(|(kind, _)| *kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)
        .filter_map(|(_, payload)| {
            attributes(payload)
                .find(|(kind, _)| *kind == NFQA_PACKET_HDR)
                .and_then(|(_, v)| Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?)))
        })
        .collect()
}

/// A bound nfnetlink_queue.
struct NfQueue {
    fd: std::os::fd::OwnedFd,
    queue: u16,
}

impl NfQueue {
    fn bind(queue: u16) -> Result<NfQueue> {
        use std::os::fd::FromRawFd;
        // SAFETY: socket() takes no pointers; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            bail!("netlink socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh socket checked to be valid, owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: the address points to a live sockaddr_nl and the length is its size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            bail!("netlink bind: {}", std::io::Error::last_os_error());
        }
        let rcvbuf: libc::c_int = 8 << 20;
        let no_enobufs: libc::c_int = 1;
        // SAFETY: each option value points to a live c_int and the length is its size.
        unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&rcvbuf as *const libc::c_int).cast(),
                4,
            );
            libc::setsockopt(
                raw,
                libc::SOL_NETLINK,
                libc::NETLINK_NO_ENOBUFS,
                (&no_enobufs as *const libc::c_int).cast(),
                4,
            );
        }
        let nfq = NfQueue { fd, queue };
        let flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
        let config = Message::new(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue)
            .attr(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])
            .attr(NFQA_CFG_PARAMS, &[0, 0, 0, 0, NFQNL_COPY_META])
            .attr(NFQA_CFG_QUEUE_MAXLEN, &65536u32.to_be_bytes())
            .attr(NFQA_CFG_MASK, &flags.to_be_bytes())
            .attr(NFQA_CFG_FLAGS, &flags.to_be_bytes())
            .finish();
        nfq.send(&config)?;
        let mut buf = vec![0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(5);
        let len = loop {
            nfq.wait_readable(Some(deadline.saturating_duration_since(Instant::now())));
            if let Some(len) = nfq.recv(&mut buf)? {
                break len;
            }
            if Instant::now() >= deadline {
                bail!("no answer from nfnetlink_queue");
            }
        };
        for (kind, payload) in messages(&buf[..len]) {
            if kind == NLMSG_ERROR {
                let code = i32::from_ne_bytes(payload.get(..4).unwrap_or(&[0; 4]).try_into()?);
                if code != 0 {
                    bail!(
                        "cannot bind NFQUEUE {queue}: {}",
                        std::io::Error::from_raw_os_error(-code)
                    );
                }
            }
        }
        Ok(nfq)
    }

    fn send(&self, bytes: &[u8]) -> Result<()> {
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: the buffer and address are live for the call and the lengths are theirs.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            bail!("netlink send: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram if one is waiting, None if none is.
    fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        // SAFETY: the buffer is live and writable for its whole length during the call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ENOBUFS) => Ok(None),
                _ => Err(anyhow!("netlink receive: {err}")),
            };
        }
        Ok(Some(n as usize))
    }

    /// Waits until a message arrives, `timeout` passes (None: no limit) or a signal comes.
    fn wait_readable(&self, timeout: Option<Duration>) {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: pfd and the optional timespec are live locals; the signal mask pointer is null (unchanged).
        unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
    }

    fn accept(&self, id: u32) -> Result<()> {
        let mut verdict = [0u8; 8];
        verdict[..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
        verdict[4..].copy_from_slice(&id.to_be_bytes());
        let msg = Message::new(NFQNL_MSG_VERDICT, NLM_F_REQUEST, self.queue)
            .attr(NFQA_VERDICT_HDR, &verdict)
            .finish();
        self.send(&msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_message_layout() {
        let msg = Message::new(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 7)
            .attr(NFQA_CFG_PARAMS, &[0, 0, 0, 0, NFQNL_COPY_META])
            .finish();
        // header 16 + nfgenmsg 4 + attribute 4 + 5 payload, padded to 12
        assert_eq!(msg.len(), 32);
        assert_eq!(u32::from_ne_bytes(msg[..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(msg[4..6].try_into().unwrap()), 0x0302);
        assert_eq!(&msg[18..20], &7u16.to_be_bytes());
        assert_eq!(u16::from_ne_bytes(msg[20..22].try_into().unwrap()), 9);
    }

    #[test]
    fn packet_ids_are_read_from_queued_packet_messages() {
        let mut hdr = Vec::new();
        hdr.extend_from_slice(&42u32.to_be_bytes());
        hdr.extend_from_slice(&[8, 0, 1]);
        let one = Message::new(NFQNL_MSG_PACKET, 0, 0)
            .attr(NFQA_PACKET_HDR, &hdr)
            .finish();
        let mut two_ids = one.clone();
        let mut hdr2 = hdr.clone();
        hdr2[..4].copy_from_slice(&43u32.to_be_bytes());
        two_ids.extend(
            Message::new(NFQNL_MSG_PACKET, 0, 0)
                .attr(NFQA_PACKET_HDR, &hdr2)
                .finish(),
        );
        assert_eq!(packet_ids(&two_ids), vec![42, 43]);
        let other = Message::new(NFQNL_MSG_CONFIG, 0, 0)
            .attr(NFQA_PACKET_HDR, &hdr)
            .finish();
        assert!(packet_ids(&other).is_empty());
    }
}
