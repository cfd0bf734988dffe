//! known_hosts files in OpenSSH's format: plain, wildcard, negated and hashed (`|1|salt|hash`)
//! host patterns, `@revoked` markers, and `@cert-authority` lines for host certificates
//! ([`check_certificate`]). Our own reader because russh's counts lines wrongly after
//! comments, splits on single spaces only and knows no markers, wildcards or negations.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{parse_public_key_base64, Algorithm, Certificate, HashAlg, PublicKey};

/// What a known_hosts file says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for this host has exactly this key (1-based line).
    Known { line: usize },
    /// An entry for this host has another key of the same type (the first such line).
    Changed { line: usize },
    /// The key is marked `@revoked` (on this line).
    Revoked { line: usize },
    /// No entry for this host with a key of this type. `other_types` lists the types the file
    /// does know for the host (a key of another type is not proof of an attack).
    Unknown { other_types: Vec<String> },
}

/// The name a host is filed under: bare for port 22, `[host]:port` otherwise.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A host key.
    Plain,
    /// `@revoked`: this key (a host key or a CA) must never be accepted.
    Revoked,
    /// `@cert-authority`: host certificates signed by this key are trusted.
    CertAuthority,
}

struct Entry {
    line: usize,
    marker: Marker,
    key: PublicKey,
}

/// One usable line of a known_hosts file, its key still in base64 (decoded when the line
/// applies to a host being looked up).
struct Line {
    /// 1-based.
    line: usize,
    marker: Marker,
    patterns: Box<str>,
    blob: Box<str>,
}

/// A known_hosts file read once: lines whose patterns are all plain host names are found by
/// name; the others (wildcards, negations, hashed names) are matched line by line, as before.
/// A lookup thus costs the lines that may apply, not the whole file: with one line per host,
/// looking up every host of a fleet is linear in the fleet, not quadratic.
#[derive(Default)]
struct Parsed {
    lines: Vec<Line>,
    /// Lowercased name (`host` or `[host]:port`) to the indexes of the lines naming it.
    by_name: HashMap<Box<str>, Vec<usize>>,
    /// Indexes of the lines that must be matched pattern by pattern.
    scan: Vec<usize>,
}

impl Parsed {
    fn parse(text: &str) -> Parsed {
        let mut parsed = Parsed::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut marker = Marker::Plain;
            if first.starts_with('@') {
                marker = match first {
                    "@revoked" => Marker::Revoked,
                    "@cert-authority" => Marker::CertAuthority,
                    // An unknown marker: OpenSSH skips the line too.
                    _ => continue,
                };
                first = fields.next().unwrap_or_default();
            }
            let (Some(_key_type), Some(blob)) = (fields.next(), fields.next()) else {
                continue;
            };
            let at = parsed.lines.len();
            parsed.lines.push(Line {
                line: index + 1,
                marker,
                patterns: first.into(),
                blob: blob.into(),
            });
            let literal = |p: &str| {
                !p.is_empty()
                    && !p.starts_with('!')
                    && !p.starts_with("|1|")
                    && !p.contains(['*', '?'])
            };
            if first.split(',').all(literal) {
                for name in first.split(',') {
                    let names = parsed
                        .by_name
                        .entry(name.to_ascii_lowercase().into())
                        .or_default();
                    // `a,a`: the line once.
                    if names.last() != Some(&at) {
                        names.push(at);
                    }
                }
            } else {
                parsed.scan.push(at);
            }
        }
        parsed
    }

    /// Entries that apply to `host`:`port`, in file order; lines whose key cannot be parsed
    /// (unknown key types, garbage) are skipped, as OpenSSH does.
    fn entries_for(&self, host: &str, port: u16) -> Vec<Entry> {
        let name = host_entry_name(host, port);
        let mut applying: Vec<usize> = self
            .by_name
            .get(name.to_ascii_lowercase().as_str())
            .cloned()
            .unwrap_or_default();
        let named = applying.len();
        applying.extend(
            self.scan
                .iter()
                .copied()
                .filter(|&i| patterns_match(&self.lines[i].patterns, &name)),
        );
        if named > 0 && applying.len() > named {
            applying.sort_unstable();
        }
        applying
            .into_iter()
            .filter_map(|i| {
                let line = &self.lines[i];
                let key = parse_public_key_base64(&line.blob).ok()?;
                Some(Entry {
                    line: line.line,
                    marker: line.marker,
                    key,
                })
            })
            .collect()
    }
}

/// Entries of `text` that apply to `host`:`port`, in file order.
#[cfg(test)]
fn entries_for(text: &str, host: &str, port: u16) -> Vec<Entry> {
    Parsed::parse(text).entries_for(host, port)
}

/// What identifies one version of a file: a change of any of these makes it read again.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// known_hosts files as last read, by path. Every connection looks its host up in the same
/// file or two: reading and splitting the whole file for each (several times) made a run's
/// host key checks quadratic in the fleet. A file is read again when its stamp changed
/// (size, times, inode): our own appends ([`learn`]) and anyone else's writes are seen. A file
/// changed less than [`SETTLED`] before it was read is not kept (file times are coarse: a
/// second write within the same tick could leave the stamp as it was).
static PARSED: Mutex<Option<ParsedFiles>> = Mutex::new(None);

/// Each file's parse, with the stamp it was read at.
type ParsedFiles = HashMap<PathBuf, (Stamp, Arc<Parsed>)>;

/// How long before a read a file must have last changed for its parse to be kept.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

/// The file at `path`, parsed; a missing file has no lines.
fn parsed(path: &Path) -> std::io::Result<Arc<Parsed>> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Arc::default()),
        Err(e) => return Err(e),
    };
    let stamp = Stamp::of(&meta);
    {
        let cache = PARSED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, hit)) = cache
            .as_ref()
            .and_then(|c| c.get(path))
            .filter(|(s, _)| *s == stamp)
        {
            return Ok(hit.clone());
        }
    }
    // Read after the stamp was taken: a write in between makes the next lookup read the file
    // again (the stamp no longer matches), never keeps an old text.
    let reading = std::time::SystemTime::now();
    let parsed = Arc::new(Parsed::parse(&read_file(path)?));
    let changed = std::time::UNIX_EPOCH
        + std::time::Duration::new(stamp.ctime.0.max(0) as u64, stamp.ctime.1.max(0) as u32);
    let settled = changed + SETTLED < reading;
    let mut cache = PARSED.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if settled {
        cache.insert(path.to_path_buf(), (stamp, parsed.clone()));
    } else {
        cache.remove(path);
    }
    Ok(parsed)
}

/// The entries of the file at `path` for `host`:`port`; none when it cannot be read (for the
/// lookups that only steer: which file decides, which key types to ask for).
fn entries_or_none(path: &Path, host: &str, port: u16) -> Vec<Entry> {
    parsed(path).map_or_else(|_| Vec::new(), |p| p.entries_for(host, port))
}

/// OpenSSH's rule: some pattern matches and no negated pattern does.
fn patterns_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated, name) {
                return false;
            }
        } else if pattern.starts_with("|1|") {
            matched |= hashed_match(pattern, name);
        } else {
            matched |= wildcard_match(pattern, name);
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern["|1|".len()..].split('|');
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Some(Ok(salt)), Some(Ok(hash))) = (
        parts.next().map(|s| b64.decode(s)),
        parts.next().map(|s| b64.decode(s)),
    ) else {
        return false;
    };
    let Ok(mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` wildcards, ASCII case-insensitive like OpenSSH's host matching.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase().into_bytes();
    let name = name.to_ascii_lowercase().into_bytes();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, consumed)) => {
                    p = star + 1;
                    n = consumed + 1;
                    backtrack = Some((star, consumed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn read_file(path: &Path) -> std::io::Result<String> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Of several known_hosts files (the user's first, then the system's), the one that decides
/// for `host`:`port`: the first with any entry for it (a key, a CA, a revocation); none has
/// one: the first (where a learned key goes). Later files are read, never written.
pub fn deciding_file<'a>(files: &'a [PathBuf], host: &str, port: u16) -> Option<&'a PathBuf> {
    files
        .iter()
        .find(|f| !entries_or_none(f, host, port).is_empty())
        .or(files.first())
}

/// Looks `key`, presented by `host`:`port`, up in the known_hosts file at `path`.
pub fn check(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<Verdict> {
    Ok(verdict(&parsed(path)?.entries_for(host, port), key))
}

fn verdict(entries: &[Entry], key: &PublicKey) -> Verdict {
    if let Some(entry) = entries
        .iter()
        .find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data())
    {
        return Verdict::Revoked { line: entry.line };
    }
    let plain = || entries.iter().filter(|e| e.marker == Marker::Plain);
    if let Some(entry) = plain().find(|e| e.key.key_data() == key.key_data()) {
        return Verdict::Known { line: entry.line };
    }
    if let Some(entry) = plain().find(|e| e.key.algorithm() == key.algorithm()) {
        return Verdict::Changed { line: entry.line };
    }
    let mut other_types: Vec<String> = Vec::new();
    for entry in plain() {
        let name = entry.key.algorithm().as_str().to_string();
        if !other_types.contains(&name) {
            other_types.push(name);
        }
    }
    Verdict::Unknown { other_types }
}

/// Key types the file knows for `host`:`port`, so the client can ask for those first (as
/// OpenSSH does) instead of being shown a key type the file has never seen.
pub fn known_algorithms(path: &Path, host: &str, port: u16) -> Vec<Algorithm> {
    let mut algorithms: Vec<Algorithm> = Vec::new();
    for entry in entries_or_none(path, host, port) {
        let algorithm = entry.key.algorithm();
        if entry.marker == Marker::Plain && !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    algorithms
}

/// Lines of the `@cert-authority` entries that apply to `host`:`port`. When there is one, the
/// host is expected to present a certificate: its plain keys are never learned.
pub fn cert_authority_lines(path: &Path, host: &str, port: u16) -> Vec<usize> {
    entries_or_none(path, host, port)
        .into_iter()
        .filter(|e| e.marker == Marker::CertAuthority)
        .map(|e| e.line)
        .collect()
}

/// Host-key algorithms whose certificate variant (`*-cert-v01@openssh.com`) to ask for: all
/// of them when known_hosts has a `@cert-authority` line for the host (a CA may sign a host
/// key of any type), none otherwise (as OpenSSH, which prefers certificates only then).
pub fn certificate_algorithms(path: &Path, host: &str, port: u16) -> Vec<Algorithm> {
    if cert_authority_lines(path, host, port).is_empty() {
        return Vec::new();
    }
    russh::Preferred::DEFAULT
        .key
        .iter()
        // SHA-1 `ssh-rsa-cert-v01`: OpenSSH >= 8.8 refuses it too.
        .filter(|a| !matches!(a, Algorithm::Rsa { hash: None }))
        .cloned()
        .collect()
}

/// Why a host certificate is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// The certificate's own key (`ca: false`) or its CA (`ca: true`) is `@revoked` on `line`.
    Revoked { ca: bool, line: usize },
    /// The CA's signature over the certificate does not verify.
    BadSignature,
    /// Signed by a key that no `@cert-authority` line for the host names. `authorities` are
    /// the `(line, fingerprint)` of the CA lines that do apply (none: no CA line at all).
    UnknownAuthority { authorities: Vec<(usize, String)> },
    /// A user certificate presented as a host certificate.
    NotHostCertificate,
    /// `now` is before the certificate's start (unix seconds).
    NotYetValid { valid_after: u64 },
    /// `now` is at or past the certificate's end (unix seconds).
    Expired { valid_before: u64 },
    /// The host name connected to is not among the certificate's principals.
    PrincipalMismatch {
        name: String,
        principals: Vec<String>,
    },
    /// Critical options in a host certificate: OpenSSH knows none and refuses them.
    CriticalOptions { names: Vec<String> },
    /// The CA signed with SHA-1 RSA (`ssh-rsa`), which OpenSSH no longer accepts
    /// (`CASignatureAlgorithms`).
    WeakSignature,
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::Revoked { ca: false, line } => {
                write!(f, "its key is marked @revoked (line {line})")
            }
            CertProblem::Revoked { ca: true, line } => {
                write!(f, "its CA is marked @revoked (line {line})")
            }
            CertProblem::BadSignature => write!(f, "the CA's signature on it does not verify"),
            CertProblem::UnknownAuthority { authorities } if authorities.is_empty() => write!(
                f,
                "it is signed by a CA that no @cert-authority line for this host names"
            ),
            CertProblem::UnknownAuthority { authorities } => {
                let listed: Vec<String> = authorities
                    .iter()
                    .map(|(line, fingerprint)| format!("{fingerprint} (line {line})"))
                    .collect();
                write!(
                    f,
                    "it is signed by an unknown CA: the @cert-authority lines for this host trust \
                     only {}",
                    listed.join(", ")
                )
            }
            CertProblem::NotHostCertificate => {
                write!(f, "it is a user certificate, not a host certificate")
            }
            CertProblem::NotYetValid { valid_after } => {
                write!(
                    f,
                    "it is not valid yet (valid from {})",
                    utc_time(*valid_after)
                )
            }
            CertProblem::Expired { valid_before } => {
                write!(f, "it expired at {}", utc_time(*valid_before))
            }
            CertProblem::PrincipalMismatch { name, principals } if principals.is_empty() => write!(
                f,
                "it names no principals (it would be valid for any host), so not for {name}"
            ),
            CertProblem::PrincipalMismatch { name, principals } => write!(
                f,
                "it is not valid for the name {name}: its principals are {}",
                principals.join(", ")
            ),
            CertProblem::CriticalOptions { names } => write!(
                f,
                "it carries critical options ({}), which no host certificate may have",
                names.join(", ")
            ),
            CertProblem::WeakSignature => write!(
                f,
                "its CA signed it with SHA-1 RSA (ssh-rsa), which OpenSSH no longer accepts"
            ),
        }
    }
}

impl CertProblem {
    /// What the operator should do about it.
    pub fn advice(&self) -> &'static str {
        match self {
            CertProblem::Revoked { .. } => {
                "Do not connect: re-sign the host key with a CA that is not revoked, or remove \
                 the @revoked line if it is wrong"
            }
            CertProblem::BadSignature => {
                "The certificate is corrupt or forged: check the host's HostCertificate file"
            }
            CertProblem::UnknownAuthority { .. } => {
                "If the host's CA changed, check the new CA's fingerprint and add it as \
                 `@cert-authority PATTERN KEY`, or re-sign the host key with the CA already \
                 listed"
            }
            CertProblem::NotHostCertificate => {
                "Sign the host key with `ssh-keygen -s CA -h` (-h makes a host certificate)"
            }
            CertProblem::NotYetValid { .. } => {
                "Check the clocks of this machine and of the CA, or re-sign with an earlier start \
                 (-V)"
            }
            CertProblem::Expired { .. } => {
                "Re-sign the host key (`ssh-keygen -s CA -h -V ...`) and reload the host's sshd"
            }
            CertProblem::PrincipalMismatch { .. } => {
                "Connect by a name the certificate lists, or re-sign it with this name among its \
                 principals (-n)"
            }
            CertProblem::CriticalOptions { .. } => "Re-sign the host key without -O options",
            CertProblem::WeakSignature => {
                "Re-sign the host key with `ssh-keygen -s CA -t rsa-sha2-512` (or an Ed25519 CA)"
            }
        }
    }
}

/// `key ID "x", serial N, ED25519 key SHA256:..., CA ED25519 SHA256:...`, for messages.
pub fn describe_certificate(cert: &Certificate) -> String {
    format!(
        "key ID \"{}\", serial {}, {} key {}, CA {} {}",
        cert.key_id(),
        cert.serial(),
        cert.public_key().algorithm().as_str(),
        cert.public_key().fingerprint(HashAlg::Sha256),
        cert.signature_key().algorithm().as_str(),
        cert.signature_key().fingerprint(HashAlg::Sha256)
    )
}

/// Judges a host certificate presented by `host`:`port` at unix time `now`, as OpenSSH does:
/// neither its key nor its CA `@revoked`; the CA's signature verifies; the CA is named by a
/// `@cert-authority` line whose patterns match the host (hashed names and `[host]:port`
/// included); a host (not user) certificate; `valid after <= now < valid before`; `host`
/// (lowercased, as OpenSSH compares it, without the port) among its principals (a certificate
/// without principals is refused: it would be valid for any host, the fail-open case newer
/// OpenSSH releases refuse too); no critical options;
/// not signed with SHA-1 RSA. `Ok(Ok(line))` is the `@cert-authority` line that vouches for it.
pub fn check_certificate(
    path: &Path,
    host: &str,
    port: u16,
    cert: &Certificate,
    now: u64,
) -> std::io::Result<Result<usize, CertProblem>> {
    Ok(judge_certificate(
        &parsed(path)?.entries_for(host, port),
        host,
        cert,
        now,
    ))
}

fn judge_certificate(
    entries: &[Entry],
    host: &str,
    cert: &Certificate,
    now: u64,
) -> Result<usize, CertProblem> {
    let same = |e: &Entry, key: &KeyData| e.key.key_data() == key;
    let revoked = |key: &KeyData| {
        entries
            .iter()
            .find(|e| e.marker == Marker::Revoked && same(e, key))
            .map(|e| e.line)
    };
    if let Some(line) = revoked(cert.public_key()) {
        return Err(CertProblem::Revoked { ca: false, line });
    }
    if let Some(line) = revoked(cert.signature_key()) {
        return Err(CertProblem::Revoked { ca: true, line });
    }
    if cert.verify_signature().is_err() {
        return Err(CertProblem::BadSignature);
    }
    let authorities = || entries.iter().filter(|e| e.marker == Marker::CertAuthority);
    let Some(authority) = authorities().find(|e| same(e, cert.signature_key())) else {
        return Err(CertProblem::UnknownAuthority {
            authorities: authorities()
                .map(|e| (e.line, fingerprint(&e.key)))
                .collect(),
        });
    };
    if cert.cert_type() != CertType::Host {
        return Err(CertProblem::NotHostCertificate);
    }
    if now < cert.valid_after() {
        return Err(CertProblem::NotYetValid {
            valid_after: cert.valid_after(),
        });
    }
    if now >= cert.valid_before() {
        return Err(CertProblem::Expired {
            valid_before: cert.valid_before(),
        });
    }
    let name = host.to_ascii_lowercase();
    let principals = cert.valid_principals();
    if !principals.contains(&name) {
        return Err(CertProblem::PrincipalMismatch {
            name,
            principals: principals.to_vec(),
        });
    }
    if !cert.critical_options().is_empty() {
        return Err(CertProblem::CriticalOptions {
            names: cert.critical_options().keys().cloned().collect(),
        });
    }
    if matches!(cert.signature().algorithm(), Algorithm::Rsa { hash: None }) {
        return Err(CertProblem::WeakSignature);
    }
    Ok(authority.line)
}

/// The verdict on a host certificate as an error that says what to do: refused unless
/// [`check_certificate`] accepts it or (as OpenSSH falls back) its key is listed as a plain
/// known key; a revoked key or CA is never accepted.
pub(crate) fn judge_host_certificate(
    path: &Path,
    host: &str,
    port: u16,
    cert: &Certificate,
) -> Result<(), crate::SshError> {
    let file = path.display().to_string();
    let io_error = |e: std::io::Error| crate::SshError::Other(format!("known_hosts {file}: {e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let problem = match check_certificate(path, host, port, cert, now).map_err(io_error)? {
        Ok(_) => return Ok(()),
        Err(problem) => problem,
    };
    if !matches!(problem, CertProblem::Revoked { .. }) {
        let plain = PublicKey::new(cert.public_key().clone(), "");
        if let Verdict::Known { .. } = check(path, host, port, &plain).map_err(io_error)? {
            return Ok(());
        }
    }
    Err(crate::SshError::HostCertificateRejected {
        host: host_entry_name(host, port),
        certificate: describe_certificate(cert),
        reason: problem.to_string(),
        known_hosts: file,
        advice: problem.advice().to_string(),
    })
}

/// Unix seconds as `2026-12-01 13:45:00 UTC` (`forever` for the largest value, as ssh-keygen
/// prints a certificate valid without end).
pub fn utc_time(unix: u64) -> String {
    if unix == u64::MAX {
        return "forever".into();
    }
    let days = unix / 86_400;
    let seconds = unix % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Days since 1970-01-01 as (year, month, day) of the proleptic Gregorian calendar: counts
/// whole 400-year cycles (146097 days), then years within the cycle, with years starting on
/// March 1st so that the leap day is the last day of a year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719468 counted from 0000-03-01.
    let shifted = days + 719_468;
    let cycle = shifted / 146_097;
    let day_of_cycle = shifted % 146_097;
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_cycle + cycle * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// One writer at a time in this process: many hosts may be learned at once.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

/// Appends `host`:`port` `key` to the file at `path` unless an entry for them already exists
/// (another connection may have learned it meanwhile). Creates the file 0600 (and its directory
/// 0700) when missing. Returns the verdict that holds after the call.
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<Verdict> {
    let _guard = LEARN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let current = check(path, host, port, key)?;
    if !matches!(current, Verdict::Unknown { .. }) {
        return Ok(current);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut line = String::new();
    let length = file.metadata()?.len();
    if length > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    let mut bare_key = key.clone();
    bare_key.set_comment("");
    let encoded = bare_key
        .to_openssh()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    line.push_str(&format!(
        "{} {}\n",
        host_entry_name(host, port),
        encoded.trim()
    ));
    // One write on an O_APPEND file: never interleaved with another process's append.
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    check(path, host, port, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use russh::keys::PrivateKey;

    fn key(seed: u8) -> PublicKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .clone()
    }

    fn line(hosts: &str, key: &PublicKey) -> String {
        format!("{hosts} {}\n", key.to_openssh().unwrap())
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mac = Hmac::<sha1::Sha1>::new_from_slice(salt)
            .unwrap()
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        format!("|1|{}|{}", b64.encode(salt), b64.encode(mac))
    }

    fn check_text(text: &str, host: &str, port: u16, key: &PublicKey) -> Verdict {
        verdict(&entries_for(text, host, port), key)
    }

    #[test]
    fn bare_name_for_port_22_bracketed_otherwise() {
        let k = key(1);
        let text = line("web1", &k) + &line("[web2]:2222", &k);
        assert_eq!(
            check_text(&text, "web1", 22, &k),
            Verdict::Known { line: 1 }
        );
        assert_eq!(
            check_text(&text, "web2", 2222, &k),
            Verdict::Known { line: 2 }
        );
        assert!(matches!(
            check_text(&text, "web1", 2222, &k),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            check_text(&text, "web2", 22, &k),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn line_numbers_count_comments_and_blank_lines() {
        let (old, new) = (key(1), key(2));
        let text = format!("# comment\n\n{}", line("mx1,10.0.0.1", &old));
        assert_eq!(
            check_text(&text, "10.0.0.1", 22, &new),
            Verdict::Changed { line: 3 }
        );
    }

    #[test]
    fn hashed_entries_match_their_name_only() {
        let k = key(3);
        let text = line(&hashed("[mx.example]:2200", b"0123456789abcdefghij"), &k);
        assert_eq!(
            check_text(&text, "mx.example", 2200, &k),
            Verdict::Known { line: 1 }
        );
        assert!(matches!(
            check_text(&text, "mx.example", 22, &k),
            Verdict::Unknown { .. }
        ));
        assert_eq!(
            check_text(&text, "mx.example", 2200, &key(4)),
            Verdict::Changed { line: 1 }
        );
    }

    #[test]
    fn wildcards_negations_tabs_and_markers() {
        let k = key(5);
        let text = format!(
            "*.mail.example,!bad.mail.example\t{}@cert-authority * {}",
            k.to_openssh().unwrap() + "\n",
            key(6).to_openssh().unwrap()
        );
        assert_eq!(
            check_text(&text, "a.mail.example", 22, &k),
            Verdict::Known { line: 1 }
        );
        assert!(matches!(
            check_text(&text, "bad.mail.example", 22, &k),
            Verdict::Unknown { .. }
        ));
        let revoked = format!("@revoked * {}\n", k.to_openssh().unwrap()) + &line("h", &k);
        assert_eq!(
            check_text(&revoked, "h", 22, &k),
            Verdict::Revoked { line: 1 }
        );
        assert!(wildcard_match("m?.*", "mx.example"));
        assert!(!wildcard_match("m?.*", "mxx.example"));
        assert!(wildcard_match("*x*e", "mx.example"));
    }

    #[test]
    fn named_and_pattern_lines_come_back_in_file_order() {
        // Lines naming hosts are found by name, the others matched one by one: together, in
        // the order of the file, names compared without case.
        let (a, b, c) = (key(7), key(8), key(9));
        let text = line("other,MX1", &a)
            + &line("mx*", &b)
            + "# a comment\n"
            + &line("mx1,mx1", &c)
            + &line("!mx1,*", &key(10));
        let lines: Vec<usize> = entries_for(&text, "mx1", 22)
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, vec![1, 2, 4]);
        let lines: Vec<usize> = entries_for(&text, "zz", 22)
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, vec![5]);
        // Another port is another name: only the catch-all applies.
        let lines: Vec<usize> = entries_for(&text, "mx1", 2222)
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, vec![5]);
    }

    #[test]
    fn other_key_types_are_unknown_not_changed() {
        let ed = key(7);
        let text = "h ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIQKG79WniIpLCYa7CbGpZ3sVUFLyYCFy4aeoLzZ6zinLNdxHUemc6T5jZrb2KcIAgAjQ6MdEj4jaSvMDwaHQfQ=\n";
        assert_eq!(
            check_text(text, "h", 22, &ed),
            Verdict::Unknown {
                other_types: vec!["ecdsa-sha2-nistp256".into()]
            }
        );
    }

    /// Keys and certificates made by ssh-keygen in a temp dir, as an operator makes them.
    struct Keygen {
        dir: tempfile::TempDir,
    }

    impl Keygen {
        fn new() -> Keygen {
            Keygen {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn run(&self, args: &[&str]) {
            let out = std::process::Command::new("ssh-keygen")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .expect("ssh-keygen runs");
            assert!(
                out.status.success(),
                "ssh-keygen {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// A new key pair `name` (type `kind`); returns its public key.
        fn key(&self, name: &str, kind: &str) -> PublicKey {
            self.run(&["-q", "-t", kind, "-N", "", "-C", name, "-f", name]);
            let text = fs::read_to_string(self.dir.path().join(format!("{name}.pub"))).unwrap();
            PublicKey::from_openssh(&text).unwrap()
        }

        /// `ssh-keygen -s ca -I id EXTRA... key.pub`, the certificate read back.
        fn sign(&self, ca: &str, key: &str, extra: &[&str]) -> Certificate {
            let public = format!("{key}.pub");
            let mut args = vec!["-q", "-s", ca, "-I", "cert-id", "-z", "42"];
            args.extend_from_slice(extra);
            args.push(&public);
            self.run(&args);
            let path = self.dir.path().join(format!("{key}-cert.pub"));
            Certificate::from_openssh(&fs::read_to_string(path).unwrap()).unwrap()
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn judge_text(
        text: &str,
        host: &str,
        port: u16,
        cert: &Certificate,
    ) -> Result<usize, CertProblem> {
        judge_certificate(&entries_for(text, host, port), host, cert, now())
    }

    fn ca_line(patterns: &str, ca: &PublicKey) -> String {
        format!("@cert-authority {patterns} {}\n", ca.to_openssh().unwrap())
    }

    #[test]
    fn a_host_certificate_from_a_listed_ca_is_accepted() {
        let keys = Keygen::new();
        let ca = keys.key("ca", "ed25519");
        keys.key("host", "ed25519");
        let cert = keys.sign(
            "ca",
            "host",
            &["-h", "-n", "mx1.example,10.0.0.5", "-V", "-5m:+1h"],
        );
        let text = format!("# fleet\n{}", ca_line("*.example,10.0.0.*", &ca));
        assert_eq!(judge_text(&text, "mx1.example", 22, &cert), Ok(2));
        assert_eq!(
            judge_text(&ca_line("[10.0.0.5]:2222", &ca), "10.0.0.5", 2222, &cert),
            Ok(1)
        );
        // Principals are compared with the name as OpenSSH lowercases it.
        assert_eq!(judge_text(&text, "MX1.example", 22, &cert), Ok(2));
        let hashed_line = format!(
            "@cert-authority {} {}\n",
            hashed("[mx1.example]:2200", b"saltsaltsaltsaltsalt"),
            ca.to_openssh().unwrap()
        );
        assert_eq!(judge_text(&hashed_line, "mx1.example", 2200, &cert), Ok(1));
        assert!(matches!(
            judge_text(&hashed_line, "mx1.example", 22, &cert),
            Err(CertProblem::UnknownAuthority { authorities }) if authorities.is_empty()
        ));
        // A CA listed only for other names vouches for nothing here.
        assert!(matches!(
            judge_text(&ca_line("*.other,!mx1.example", &ca), "mx1.example", 22, &cert),
            Err(CertProblem::UnknownAuthority { authorities }) if authorities.is_empty()
        ));
        // The certificate is not a plain key: the plain-key verdict knows nothing of it.
        let plain = PublicKey::new(cert.public_key().clone(), "");
        assert!(matches!(
            check_text(&text, "mx1.example", 22, &plain),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn rsa_and_ecdsa_cas_and_host_keys_verify() {
        let keys = Keygen::new();
        let ca = keys.key("ca", "rsa");
        keys.key("host", "ecdsa");
        let cert = keys.sign("ca", "host", &["-h", "-n", "mx1"]);
        assert_eq!(judge_text(&ca_line("mx1", &ca), "mx1", 22, &cert), Ok(1));
        let ecdsa_ca = keys.key("ca2", "ecdsa");
        keys.key("host2", "ed25519");
        let cert = keys.sign("ca2", "host2", &["-h", "-n", "mx1"]);
        assert_eq!(
            judge_text(&ca_line("mx1", &ecdsa_ca), "mx1", 22, &cert),
            Ok(1)
        );
        // A SHA-1 RSA CA signature, as OpenSSH >= 8.2 refuses by default.
        let cert = keys.sign("ca", "host2", &["-h", "-n", "mx1", "-t", "ssh-rsa"]);
        assert_eq!(
            judge_text(&ca_line("mx1", &ca), "mx1", 22, &cert),
            Err(CertProblem::WeakSignature)
        );
    }

    #[test]
    fn host_certificates_are_refused_for_what_is_wrong_with_them() {
        let keys = Keygen::new();
        let ca = keys.key("ca", "ed25519");
        let other_ca = keys.key("other", "ed25519");
        let host = keys.key("host", "ed25519");
        let text = ca_line("mx*", &ca);
        let refused = |extra: &[&str], signer: &str| {
            let cert = keys.sign(signer, "host", extra);
            judge_text(&text, "mx1", 22, &cert).unwrap_err()
        };
        assert_eq!(
            refused(&["-h", "-n", "mx2,mx3"], "ca"),
            CertProblem::PrincipalMismatch {
                name: "mx1".into(),
                principals: vec!["mx2".into(), "mx3".into()]
            }
        );
        let expired = refused(&["-h", "-n", "mx1", "-V", "20200101:20200102"], "ca");
        assert!(
            matches!(expired, CertProblem::Expired { .. }),
            "{expired:?}"
        );
        assert!(
            expired
                .to_string()
                .contains("expired at 2020-01-02 00:00:00 UTC"),
            "{expired}"
        );
        let early = refused(&["-h", "-n", "mx1", "-V", "20990101:21000101"], "ca");
        assert!(
            early
                .to_string()
                .contains("not valid yet (valid from 2099-01-01"),
            "{early}"
        );
        let user = refused(&["-n", "mx1"], "ca");
        assert_eq!(user, CertProblem::NotHostCertificate);
        let unknown = refused(&["-h", "-n", "mx1"], "other");
        assert_eq!(
            unknown,
            CertProblem::UnknownAuthority {
                authorities: vec![(1, fingerprint(&ca))]
            }
        );
        assert!(unknown.to_string().contains(&fingerprint(&ca)), "{unknown}");
        let critical = refused(&["-h", "-n", "mx1", "-O", "force-command=true"], "ca");
        assert!(
            matches!(critical, CertProblem::CriticalOptions { .. }),
            "{critical:?}"
        );

        let cert = keys.sign("ca", "host", &["-h", "-n", "mx1"]);
        let revoked_ca = text.clone() + &format!("@revoked * {}\n", ca.to_openssh().unwrap());
        assert_eq!(
            judge_text(&revoked_ca, "mx1", 22, &cert),
            Err(CertProblem::Revoked { ca: true, line: 2 })
        );
        let revoked_key = format!("@revoked mx1 {}\n", host.to_openssh().unwrap()) + &text;
        assert_eq!(
            judge_text(&revoked_key, "mx1", 22, &cert),
            Err(CertProblem::Revoked { ca: false, line: 1 })
        );
        // A @revoked line for other hosts does not apply.
        let elsewhere = format!("@revoked web* {}\n", host.to_openssh().unwrap()) + &text;
        assert_eq!(judge_text(&elsewhere, "mx1", 22, &cert), Ok(2));
        // A tampered certificate: its CA signature no longer verifies.
        let mut bytes = cert.to_bytes().unwrap();
        let id = bytes.windows(7).position(|w| w == b"cert-id").unwrap();
        bytes[id] = b'C';
        let forged = Certificate::from_bytes(&bytes).unwrap();
        assert_eq!(
            judge_text(&text, "mx1", 22, &forged),
            Err(CertProblem::BadSignature)
        );
        let _ = other_ca;
    }

    #[test]
    fn a_certificate_without_principals_is_refused() {
        let keys = Keygen::new();
        let ca = keys.key("ca", "ed25519");
        keys.key("host", "ed25519");
        let cert = keys.sign("ca", "host", &["-h"]);
        assert!(cert.valid_principals().is_empty());
        assert!(matches!(
            judge_text(&ca_line("*", &ca), "anything", 22, &cert),
            Err(CertProblem::PrincipalMismatch { .. })
        ));
    }

    #[test]
    fn refusals_fall_back_to_a_listed_plain_key_but_never_past_a_revocation() {
        let keys = Keygen::new();
        let ca = keys.key("ca", "ed25519");
        keys.key("other", "ed25519");
        let host = keys.key("host", "ed25519");
        let cert = keys.sign("other", "host", &["-h", "-n", "mx1"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, ca_line("mx1", &ca)).unwrap();
        let error = judge_host_certificate(&path, "mx1", 2200, &cert).unwrap_err();
        assert!(matches!(
            error,
            crate::SshError::HostCertificateRejected { .. }
        ));
        let error = judge_host_certificate(&path, "mx1", 22, &cert).unwrap_err();
        let text = error.to_string();
        for part in [
            "host certificate of mx1 refused",
            "key ID \"cert-id\", serial 42",
            &fingerprint(&ca),
            "unknown CA",
            "@cert-authority PATTERN KEY",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        fs::write(&path, ca_line("mx1", &ca) + &line("mx1", &host)).unwrap();
        assert_eq!(judge_host_certificate(&path, "mx1", 22, &cert), Ok(()));
        fs::write(
            &path,
            line("mx1", &host) + &format!("@revoked * {}", host.to_openssh().unwrap()),
        )
        .unwrap();
        let error = judge_host_certificate(&path, "mx1", 22, &cert).unwrap_err();
        assert!(error.to_string().contains("@revoked (line 2)"), "{error}");
    }

    #[test]
    fn certificates_are_asked_for_only_where_a_ca_line_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(
            &path,
            ca_line("*.mail,!old.mail", &key(9)) + &line("web", &key(10)),
        )
        .unwrap();
        let wanted = certificate_algorithms(&path, "a.mail", 22);
        assert_eq!(wanted[0], Algorithm::Ed25519);
        assert!(!wanted.contains(&Algorithm::Rsa { hash: None }));
        assert!(certificate_algorithms(&path, "old.mail", 22).is_empty());
        assert!(certificate_algorithms(&path, "web", 22).is_empty());
        assert_eq!(cert_authority_lines(&path, "a.mail", 22), vec![1]);
        // A CA line vouches for no plain key, and is not a key type the host is known by.
        assert!(known_algorithms(&path, "a.mail", 22).is_empty());
    }

    #[test]
    fn utc_times_read_like_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_time(951_868_799), "2000-02-29 23:59:59 UTC");
        assert_eq!(utc_time(951_868_800), "2000-03-01 00:00:00 UTC");
        assert_eq!(utc_time(4_102_444_800), "2100-01-01 00:00:00 UTC");
        assert_eq!(utc_time(1_798_761_600 + 3_723), "2027-01-01 01:02:03 UTC");
        assert_eq!(utc_time(u64::MAX), "forever");
    }

    #[test]
    fn learn_creates_the_file_private_and_appends_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("known_hosts");
        let k = key(8);
        assert_eq!(
            learn(&path, "h", 2222, &k).unwrap(),
            Verdict::Known { line: 1 }
        );
        assert_eq!(
            learn(&path, "h", 2222, &k).unwrap(),
            Verdict::Known { line: 1 }
        );
        fs::write(
            &path,
            fs::read_to_string(&path).unwrap() + "# no newline at end",
        )
        .unwrap();
        assert_eq!(
            learn(&path, "g", 22, &k).unwrap(),
            Verdict::Known { line: 3 }
        );
        let text = fs::read_to_string(&path).unwrap();
        let blob = k.to_openssh().unwrap();
        assert_eq!(
            text,
            format!("[h]:2222 {blob}\n# no newline at end\ng {blob}\n")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
