//! known_hosts files in OpenSSH's format: plain, wildcard, negated and hashed (`|1|salt|hash`)
//! host patterns, `@revoked` markers. Our own reader because russh's counts lines wrongly after
//! comments, splits on single spaces only and knows no markers, wildcards or negations.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{parse_public_key_base64, Algorithm, HashAlg, PublicKey};

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

struct Entry {
    line: usize,
    revoked: bool,
    key: PublicKey,
}

/// Entries that apply to `host`:`port`, in file order. A missing file has none; lines that
/// cannot be parsed (unknown key types, garbage) are skipped, as OpenSSH does.
fn entries_for(text: &str, host: &str, port: u16) -> Vec<Entry> {
    let name = host_entry_name(host, port);
    let mut found = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                // Host certificates are not supported: a CA line vouches for no plain key.
                _ => continue,
            }
            first = fields.next().unwrap_or_default();
        }
        let (Some(_key_type), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !patterns_match(first, &name) {
            continue;
        }
        if let Ok(key) = parse_public_key_base64(blob) {
            found.push(Entry {
                line: index + 1,
                revoked,
                key,
            });
        }
    }
    found
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

/// Looks `key`, presented by `host`:`port`, up in the known_hosts file at `path`.
pub fn check(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<Verdict> {
    Ok(verdict(&entries_for(&read_file(path)?, host, port), key))
}

fn verdict(entries: &[Entry], key: &PublicKey) -> Verdict {
    if let Some(entry) = entries
        .iter()
        .find(|e| e.revoked && e.key.key_data() == key.key_data())
    {
        return Verdict::Revoked { line: entry.line };
    }
    let plain = || entries.iter().filter(|e| !e.revoked);
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
    let text = read_file(path).unwrap_or_default();
    let mut algorithms: Vec<Algorithm> = Vec::new();
    for entry in entries_for(&text, host, port) {
        let algorithm = entry.key.algorithm();
        if !entry.revoked && !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    algorithms
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
