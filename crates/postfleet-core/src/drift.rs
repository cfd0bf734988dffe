//! Drift: what changed on a host outside postfleet since postfleet last left it.
//!
//! Every apply leaves, per instance, a record of the managed settings as it left them (the
//! main.cf parameters and master.cf services the playbook sets, the files it owns: values,
//! or checksums where a value may be secret), with when and by which run. A later run reads
//! the record with the facts and compares it with what the host has *now*: a difference is
//! drift, whatever the playbook says today (a playbook change is not drift; a hand edit is,
//! even one that happens to match the new playbook). All of it is pure: the record is made
//! from the desired state, read from the probe's output, and compared with the facts.

use std::fmt::Write as _;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::facts::HostFacts;
use crate::model::{DesiredInstance, InstanceName, InstanceState};
use crate::plan::{maincf, mastercf};

/// The first line of every record: what the file is, and its format's version.
const MAGIC: &str = "# postfleet applied 1";

/// One managed setting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// A main.cf parameter, by name.
    Param(String),
    /// A master.cf service, by `service/type`.
    Service(String),
    /// A file the playbook owns, by absolute path.
    File(String),
}

impl Key {
    /// How the user names it: "main.cf `relayhost`", "master.cf `smtp/inet`", "file PATH".
    pub fn describe(&self) -> String {
        match self {
            Key::Param(name) => format!("main.cf `{name}`"),
            Key::Service(key) => format!("master.cf `{key}`"),
            Key::File(path) => format!("file {path}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Key::Param(_) => "param",
            Key::Service(_) => "service",
            Key::File(_) => "file",
        }
    }

    fn name(&self) -> &str {
        match self {
            Key::Param(s) | Key::Service(s) | Key::File(s) => s,
        }
    }
}

/// A setting's value as recorded, or as the host has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Not set (parameter, service) or not there (file).
    Absent,
    /// A value that may be shown.
    Shown(String),
    /// A value that may not be shown (a secret-looking parameter or service argument): its
    /// SHA-256.
    Hidden(String),
    /// A file: its mode and the SHA-256 of its content; `secret` (the playbook's `secret:
    /// true`): the checksum is never shown either.
    File {
        mode: u32,
        sha256: String,
        secret: bool,
    },
}

impl Value {
    fn token(&self) -> String {
        match self {
            Value::Absent => "-".into(),
            Value::Shown(text) => format!("v:{}", b64(text.as_bytes())),
            Value::Hidden(sum) => format!("h:{sum}"),
            Value::File {
                mode,
                sha256,
                secret,
            } => format!("{}:{mode:o}:{sha256}", if *secret { "s" } else { "f" }),
        }
    }

    fn from_token(token: &str) -> Option<Value> {
        if token == "-" {
            return Some(Value::Absent);
        }
        let (kind, rest) = token.split_once(':')?;
        match kind {
            "v" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()?;
                Some(Value::Shown(String::from_utf8(bytes).ok()?))
            }
            "h" => Some(Value::Hidden(rest.to_string())),
            "f" | "s" => {
                let (mode, sum) = rest.split_once(':')?;
                Some(Value::File {
                    mode: u32::from_str_radix(mode, 8).ok()?,
                    sha256: sum.to_string(),
                    secret: kind == "s",
                })
            }
            _ => None,
        }
    }

    /// For a message: the value, "(hidden)", "unset", or a file's mode and checksum (a
    /// secret file's mode only).
    fn describe(&self, key: &Key) -> String {
        match (self, key) {
            (Value::Absent, Key::File(_)) => "missing".into(),
            (Value::Absent, _) => "unset".into(),
            (Value::Shown(text), _) if text.is_empty() => "empty".into(),
            (Value::Shown(text), _) => text.clone(),
            (Value::Hidden(_), _) => crate::secrets::HIDDEN.into(),
            (
                Value::File {
                    mode, secret: true, ..
                },
                _,
            ) => format!("mode {mode:o}, content {}", crate::secrets::HIDDEN),
            (Value::File { mode, sha256, .. }, _) => {
                format!("mode {mode:o}, sha256 {}", &sha256[..sha256.len().min(12)])
            }
        }
    }
}

/// What one apply left for one instance: when, by which run, and every managed setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unix time of the apply (the controller's clock).
    pub at: u64,
    /// The host's apply generation that run made (`$PF_STATE/generation`).
    pub generation: u64,
    /// Who ran it: `user@controller`.
    pub by: String,
    pub items: Vec<(Key, Value)>,
}

/// Who and when, for the records an apply writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub at: u64,
    pub by: String,
}

impl Stamp {
    /// Now, by the user running postfleet on this machine.
    pub fn now() -> Stamp {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Stamp {
            at,
            by: format!("{user}@{host}"),
        }
    }
}

/// One setting that changed outside postfleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub instance: InstanceName,
    pub key: Key,
    /// As the last apply left it.
    pub was: Value,
    /// As the host has it now.
    pub now: Value,
    /// When that apply ran (Unix time) and which run it was.
    pub since: u64,
    pub generation: u64,
    pub by: String,
}

impl Drift {
    /// `main.cf `relayhost` of postfix-bulk on mx03 changed outside postfleet since the apply
    /// of 2026-12-01 10:00:00 UTC (run 7, by root@bastion): was X, now Y` (no "of" for the
    /// default instance).
    pub fn message(&self, host: &str) -> String {
        let of = if self.instance.is_default() {
            String::new()
        } else {
            format!(" of {}", self.instance)
        };
        format!(
            "{}{of} on {host} changed outside postfleet since the apply of {} (run {}, by {}): was {}, now {}",
            self.key.describe(),
            utc(self.since),
            self.generation,
            self.by,
            self.was.describe(&self.key),
            self.now.describe(&self.key),
        )
    }

    pub fn was_shown(&self) -> String {
        self.was.describe(&self.key)
    }

    pub fn now_shown(&self) -> String {
        self.now.describe(&self.key)
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time (civil-from-days, proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A parameter's value as recorded: shown, or hashed when its name looks secret.
fn param_value(name: &str, value: Option<&str>) -> Value {
    match value {
        None => Value::Absent,
        Some(v) if crate::secrets::is_secret_name(name) => Value::Hidden(sha256(v.as_bytes())),
        Some(v) => Value::Shown(v.to_string()),
    }
}

/// A service entry's value: its words on one line, hashed when an argument is a
/// secret-looking `name=value`.
fn service_value(words: &[String]) -> Value {
    let line = words.join(" ");
    let secret = words.iter().any(|w| {
        w.split_once('=')
            .is_some_and(|(name, _)| crate::secrets::is_secret_name(name))
    });
    if secret {
        Value::Hidden(sha256(line.as_bytes()))
    } else {
        Value::Shown(line)
    }
}

fn file_value(content: &[u8], mode: u32, secret: bool) -> Value {
    Value::File {
        mode,
        sha256: sha256(content),
        secret,
    }
}

/// What an apply of `inst` leaves, setting by setting: the parameters and services the
/// playbook sets (every one in the file when a template owns it) and the files it owns.
/// None for an instance the playbook wants absent: it keeps no record.
pub fn desired_items(inst: &DesiredInstance) -> Option<Vec<(Key, Value)>> {
    if inst.state == InstanceState::Absent {
        return None;
    }
    let mut items = Vec::new();
    match &inst.main_cf {
        Some(template) => {
            let edits = inst
                .main_cf_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()));
            let text = maincf::edit(template, edits);
            for (name, value) in maincf::parameters(&text) {
                let value = param_value(&name, Some(&value));
                items.push((Key::Param(name), value));
            }
            for (name, value) in &inst.main_cf_params {
                if value.is_none() {
                    items.push((Key::Param(name.clone()), Value::Absent));
                }
            }
        }
        None => {
            for (name, value) in &inst.main_cf_params {
                let value = param_value(name, value.as_deref().map(str::trim));
                items.push((Key::Param(name.clone()), value));
            }
        }
    }
    match &inst.master_cf {
        Some(template) => {
            let text = mastercf::edit(template, &inst.master_services);
            for entry in mastercf::entries(&text) {
                items.push((Key::Service(entry.key()), service_value(&entry.words)));
            }
            for service in inst.master_services.iter().filter(|s| s.entry.is_none()) {
                items.push((Key::Service(service.key()), Value::Absent));
            }
        }
        None => {
            for service in &inst.master_services {
                let value = match &service.entry {
                    Some(entry) => service_value(&mastercf::desired_words(service, entry)),
                    None => Value::Absent,
                };
                items.push((Key::Service(service.key()), value));
            }
        }
    }
    for file in &inst.files {
        items.push((
            Key::File(file.path.clone()),
            file_value(&file.content, file.mode, file.secret),
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|later, earlier| later.0 == earlier.0);
    Some(items)
}

/// An instance's main.cf and master.cf as the facts have them, each parsed once for all
/// the recorded settings compared with them.
struct Live<'f> {
    /// Explicitly set parameters (the last definition of a name wins, as in Postfix); None:
    /// no main.cf.
    params: Option<std::collections::HashMap<String, String>>,
    /// master.cf's entries; None: no master.cf.
    services: Option<Vec<mastercf::Entry>>,
    facts: &'f HostFacts,
}

impl<'f> Live<'f> {
    fn of(facts: &'f HostFacts, name: &InstanceName) -> Live<'f> {
        let inst = facts.instances.get(name);
        Live {
            params: inst
                .and_then(|i| i.main_cf.as_deref())
                .map(|text| maincf::parameters(text).into_iter().collect()),
            services: inst
                .and_then(|i| i.master_cf.as_deref())
                .map(mastercf::entries),
            facts,
        }
    }

    /// What the host has now for `key` (recorded as `was`); None when the facts do not tell
    /// (a file the playbook no longer owns is not read).
    fn current(&self, key: &Key, was: &Value) -> Option<Value> {
        Some(match key {
            Key::Param(param) => {
                let value = self.params.as_ref().and_then(|p| p.get(param));
                param_value(param, value.map(String::as_str))
            }
            Key::Service(service) => {
                let Some(entries) = &self.services else {
                    return Some(Value::Absent);
                };
                let found: Vec<&mastercf::Entry> =
                    entries.iter().filter(|e| e.key() == *service).collect();
                match found.as_slice() {
                    [] => Value::Absent,
                    [one] => service_value(&one.words),
                    // Postfix uses the last of duplicates; say the entry is not what was left.
                    many => {
                        let words: Vec<String> =
                            many.iter().flat_map(|e| e.words.clone()).collect();
                        service_value(&words)
                    }
                }
            }
            Key::File(path) => match self.facts.files.get(path)? {
                crate::facts::FileFacts {
                    content: Some(content),
                    mode,
                    ..
                } => {
                    let secret = matches!(was, Value::File { secret: true, .. });
                    file_value(content, mode.unwrap_or(0), secret)
                }
                _ => Value::Absent,
            },
        })
    }
}

/// The drift of one instance: every recorded setting the host no longer has as recorded
/// (of those the facts tell).
pub fn detect(name: &InstanceName, record: &Record, facts: &HostFacts) -> Vec<Drift> {
    let live = Live::of(facts, name);
    record
        .items
        .iter()
        .filter_map(|(key, was)| {
            let now = live.current(key, was)?;
            (now != *was).then(|| Drift {
                instance: name.clone(),
                key: key.clone(),
                was: was.clone(),
                now,
                since: record.at,
                generation: record.generation,
                by: record.by.clone(),
            })
        })
        .collect()
}

impl Record {
    /// The record's text, as the apply writes it on the host.
    pub fn render(&self) -> String {
        let mut text = format!(
            "{MAGIC}\napplied\t{}\t{}\t{}\n",
            self.at,
            self.generation,
            b64(self.by.as_bytes())
        );
        for (key, value) in &self.items {
            let _ = writeln!(
                text,
                "{}\t{}\t{}",
                key.kind(),
                b64(key.name().as_bytes()),
                value.token()
            );
        }
        text
    }

    /// Reads a record the host holds; None when it is not one (then it is not compared).
    pub fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let head: Vec<&str> = lines.next()?.split('\t').collect();
        let ["applied", at, generation, by] = head.as_slice() else {
            return None;
        };
        let decode = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        let mut record = Record {
            at: at.parse().ok()?,
            generation: generation.parse().ok()?,
            by: decode(by)?,
            items: Vec::new(),
        };
        for line in lines {
            let fields: Vec<&str> = line.split('\t').collect();
            let [kind, name, token] = fields.as_slice() else {
                return None;
            };
            let name = decode(name)?;
            let key = match *kind {
                "param" => Key::Param(name),
                "service" => Key::Service(name),
                "file" => Key::File(name),
                _ => return None,
            };
            record.items.push((key, Value::from_token(token)?));
        }
        Some(record)
    }
}

/// The file name of an instance's record in `$PF_STATE/applied/`.
pub fn record_file(name: &InstanceName) -> String {
    if name.is_default() {
        "default".into()
    } else {
        name.as_str().to_string()
    }
}

/// The instance a record file name stands for.
pub fn instance_of_record_file(file: &str) -> Option<InstanceName> {
    if file == "default" {
        Some(InstanceName::default_instance())
    } else {
        InstanceName::parse(file).ok().filter(|n| !n.is_default())
    }
}

#[cfg(test)]
mod tests;
