//! The mail sink: a small SMTP server on the lab's gateway address that accepts every
//! message and stores it, with its envelope and the port it came in on, as one JSON file
//! per message in `<state dir>/sink/`. Tests read them with [`read_messages`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::sys;

/// One message the sink received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkMessage {
    /// Order of arrival over all ports, from 1.
    pub seq: u64,
    /// When the message was accepted, seconds since the Unix epoch.
    pub time: f64,
    /// The sink port it was sent to.
    pub port: u16,
    /// The sending client, `address:port`.
    pub peer: String,
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed, CRLF line ends kept.
    pub data: String,
}

impl SinkMessage {
    /// The value of the first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_string());
                }
            }
        }
        found
    }
}

fn sink_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("sink")
}

/// Every message stored in a lab's state dir, in order of arrival.
pub fn read_messages(state_dir: &Path) -> Vec<SinkMessage> {
    let Ok(entries) = std::fs::read_dir(sink_dir(state_dir)) else {
        return Vec::new();
    };
    let mut messages: Vec<SinkMessage> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_message_file(p))
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect();
    messages.sort_by_key(|m| m.seq);
    messages
}

/// Deletes every stored message.
pub fn clear(state_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(sink_dir(state_dir)) {
        for path in entries.flatten().map(|e| e.path()) {
            if is_message_file(&path) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn is_message_file(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".json") && !name.starts_with('.')
}

/// Serves SMTP on `gateway` at every port until the process is stopped.
pub fn serve(state_dir: &Path, gateway: Ipv4Addr, ports: &[u16], pid_file: &Path) -> Result<()> {
    let dir = sink_dir(state_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let last_seq = read_messages(state_dir).last().map(|m| m.seq).unwrap_or(0);
    let seq = Arc::new(AtomicU64::new(last_seq));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut listeners = Vec::new();
        for &port in ports {
            let addr = SocketAddr::from((gateway, port));
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("the sink cannot listen on {addr}"))?;
            listeners.push((port, listener));
        }
        // Recorded only once listening, so whoever waits for the file can send at once.
        if let Some(me) = sys::ProcRef::of(std::process::id() as i32) {
            me.write(pid_file)?;
        }
        println!(
            "sink: listening on {gateway} ports {ports:?}, storing in {}",
            dir.display()
        );
        for (port, listener) in listeners {
            let dir = dir.clone();
            let seq = seq.clone();
            tokio::spawn(async move {
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // e.g. out of file descriptors: retry without spinning
                            eprintln!("sink: accept on port {port}: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let dir = dir.clone();
                    let seq = seq.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session(stream, peer, port, &dir, &seq).await {
                            eprintln!("sink: session with {peer}: {e:#}");
                        }
                    });
                }
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), anyhow::Error>(())
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Longest line accepted (RFC 5321 allows 1000 with CRLF; be generous with long headers).
const MAX_LINE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    port: u16,
    dir: &Path,
    seq: &AtomicU64,
) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"220 sink.postfleet-lab.test ESMTP postfleet lab sink\r\n")
        .await?;
    let mut helo = String::new();
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut reader, &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        let reply: String = match verb.as_str() {
            "EHLO" => {
                helo = arg;
                "250-sink.postfleet-lab.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 67108864"
                    .into()
            }
            "HELO" => {
                helo = arg;
                "250 sink.postfleet-lab.test".into()
            }
            "MAIL" => match address_after(&arg, "FROM:") {
                Some(addr) => {
                    mail_from = Some(addr);
                    rcpt_to.clear();
                    "250 2.1.0 Ok".into()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => match (mail_from.is_some(), address_after(&arg, "TO:")) {
                (false, _) => "503 5.5.1 Error: need MAIL command".into(),
                (true, Some(addr)) => {
                    rcpt_to.push(addr);
                    "250 2.1.5 Ok".into()
                }
                (true, None) => "501 5.5.4 Syntax: RCPT TO:<address>".into(),
            },
            "DATA" if rcpt_to.is_empty() => "503 5.5.1 Error: need RCPT command".into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut reader).await?;
                let message = SinkMessage {
                    seq: seq.fetch_add(1, Ordering::SeqCst) + 1,
                    time: unix_now(),
                    port,
                    peer: peer.to_string(),
                    helo: helo.clone(),
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                };
                store(dir, &message)?;
                format!("250 2.0.0 Ok: queued as {}", message.seq)
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 2.0.0 Ok".into()
            }
            "NOOP" => "250 2.0.0 Ok".into(),
            "VRFY" => "252 2.0.0 Cannot verify".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Error: command not recognized".into(),
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> Result<usize> {
    let n = reader.read_until(b'\n', line).await?;
    if line.len() > MAX_LINE {
        anyhow::bail!("line longer than {MAX_LINE} bytes");
    }
    Ok(n)
}

/// The address in `FROM:<a@b> SIZE=1` style arguments (may be empty: the null sender).
fn address_after(arg: &str, keyword: &str) -> Option<String> {
    let rest = arg.get(..keyword.len())?;
    if !rest.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}

/// Reads message data up to the lone "." line, undoing dot-stuffing.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Result<String> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(reader, &mut line).await? == 0 {
            anyhow::bail!("connection closed during DATA");
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let content = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(content);
        if data.len() > MAX_MESSAGE {
            anyhow::bail!("message larger than {MAX_MESSAGE} bytes");
        }
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

fn store(dir: &Path, message: &SinkMessage) -> Result<()> {
    let path = dir.join(format!("{:08}.json", message.seq));
    sys::write_atomic(&path, &serde_json::to_vec_pretty(message)?, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn addresses_are_taken_from_mail_and_rcpt_arguments() {
        assert_eq!(
            address_after("FROM:<a@b.c> SIZE=12", "FROM:").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(address_after("from: <>", "FROM:").as_deref(), Some(""));
        assert_eq!(address_after("TO:<x@y>", "TO:").as_deref(), Some("x@y"));
        assert_eq!(address_after("TO:x@y", "TO:"), None);
        assert_eq!(address_after("", "TO:"), None);
    }

    #[test]
    fn headers_are_unfolded() {
        let m = SinkMessage {
            seq: 1,
            time: 0.0,
            port: 2525,
            peer: String::new(),
            helo: String::new(),
            mail_from: String::new(),
            rcpt_to: vec![],
            data: "Received: from a\r\n\tby b\r\nSubject: hi\r\n\r\nbody\r\n".into(),
        };
        assert_eq!(m.header("received").as_deref(), Some("from a by b"));
        assert_eq!(m.header("Subject").as_deref(), Some("hi"));
        assert_eq!(m.header("To"), None);
    }

    /// A full SMTP conversation over loopback, pipelined like Postfix does it.
    #[test]
    fn stores_a_pipelined_message_with_its_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let sink = dir.path().join("sink");
        std::fs::create_dir_all(&sink).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seq = AtomicU64::new(0);
            let server = async {
                let (stream, peer) = listener.accept().await.unwrap();
                session(stream, peer, 2526, &sink, &seq).await.unwrap();
            };
            let client = async {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.write_all(
                    b"EHLO h1.lab.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n\
                      RCPT TO:<c@y.test>\r\nDATA\r\n",
                )
                .await
                .unwrap();
                c.write_all(b"Subject: t\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n")
                    .await
                    .unwrap();
                let mut replies = String::new();
                c.read_to_string(&mut replies).await.unwrap();
                replies
            };
            let ((), replies) = tokio::join!(server, client);
            assert!(replies.contains("250 2.0.0 Ok: queued as 1"), "{replies}");
            assert!(replies.ends_with("221 2.0.0 Bye\r\n"), "{replies}");
        });
        let messages = read_messages(dir.path());
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!((m.seq, m.port), (1, 2526));
        assert_eq!(m.helo, "h1.lab.test");
        assert_eq!(m.mail_from, "a@x.test");
        assert_eq!(m.rcpt_to, vec!["b@y.test", "c@y.test"]);
        assert_eq!(m.data, "Subject: t\r\n\r\n.dot\r\nend\r\n");
        clear(dir.path());
        assert!(read_messages(dir.path()).is_empty());
    }
}
