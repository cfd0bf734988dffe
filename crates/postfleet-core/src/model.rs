//! The desired state of one host, fully rendered: what the playbook asks for once templates
//! and variables are resolved. Produced by `render`, consumed by the pure planner.

use std::collections::BTreeMap;
use std::fmt;

/// A Postfix instance name: `-` for the default instance, or `postfix-NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceName(String);

impl InstanceName {
    pub const DEFAULT: &'static str = "-";

    /// Accepts `-` (or `default`) and `postfix-NAME` where NAME is `[a-z0-9][a-z0-9._-]*`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "-" || raw == "default" {
            return Ok(InstanceName("-".into()));
        }
        let Some(suffix) = raw.strip_prefix("postfix-") else {
            return Err(format!(
                "instance name '{raw}' must be '-' (the default instance) or start with 'postfix-'"
            ));
        };
        let valid = !suffix.is_empty()
            && suffix.len() <= 64
            && suffix
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && suffix.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
            })
            && !suffix.contains("..");
        if !valid {
            return Err(format!(
                "instance name '{raw}': after 'postfix-' use lower-case letters, digits, '.', '_' or '-' (at most 64)"
            ));
        }
        Ok(InstanceName(raw.to_string()))
    }

    pub fn default_instance() -> Self {
        InstanceName("-".into())
    }
    pub fn is_default(&self) -> bool {
        self.0 == "-"
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The instance's configuration directory, as `postmulti -I NAME -e create` makes it.
    pub fn config_dir(&self) -> String {
        if self.is_default() {
            "/etc/postfix".into()
        } else {
            format!("/etc/{}", self.0)
        }
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Present,
    Absent,
}

/// A master.cf service type (its second field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    Inet,
    Unix,
    UnixDgram,
    Fifo,
    Pass,
}

impl ServiceType {
    pub const ALL: [ServiceType; 5] = [
        ServiceType::Inet,
        ServiceType::Unix,
        ServiceType::UnixDgram,
        ServiceType::Fifo,
        ServiceType::Pass,
    ];

    /// The type as master.cf writes it; None for anything else.
    pub fn parse(text: &str) -> Option<ServiceType> {
        ServiceType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Inet => "inet",
            ServiceType::Unix => "unix",
            ServiceType::UnixDgram => "unix-dgram",
            ServiceType::Fifo => "fifo",
            ServiceType::Pass => "pass",
        }
    }

    /// A network listener: the master opens its socket, so changing it needs a restart.
    pub fn is_listener(self) -> bool {
        self == ServiceType::Inet
    }
}

impl std::fmt::Display for ServiceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lookup table's type, as the playbook gives it (validated there: `hash`, `regexp`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapType(String);

impl MapType {
    /// Types whose index `postmap` builds (daemons reopen it by themselves when it changes).
    pub const INDEXED: [&'static str; 6] = ["hash", "btree", "lmdb", "cdb", "dbm", "sdbm"];

    pub fn new(name: impl Into<String>) -> MapType {
        MapType(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `postmap` builds an index of it; else it is read as text (regexp, pcre, cidr,
    /// texthash), and a change needs a reload.
    pub fn is_indexed(&self) -> bool {
        MapType::INDEXED.contains(&self.0.as_str())
    }
}

impl std::fmt::Display for MapType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One master.cf entry, identified by `service/type` (as `postconf -M` names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterService {
    pub service: String,
    pub kind: ServiceType,
    /// `None`: remove the entry (`postconf -MX`). `Some`: the eight fields and arguments.
    pub entry: Option<MasterEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterEntry {
    pub private: String,
    pub unpriv: String,
    pub chroot: String,
    pub wakeup: String,
    pub maxproc: String,
    pub command: String,
    /// Each argument as one word, e.g. `-o`, `syslog_name=postfix/submission`.
    pub args: Vec<String>,
}

impl MasterService {
    pub fn key(&self) -> String {
        format!("{}/{}", self.service, self.kind)
    }
}

/// A file the playbook owns completely: a lookup table source, or any other file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFile {
    /// Absolute path on the host.
    pub path: String,
    pub content: Vec<u8>,
    /// Octal permission bits, e.g. 0o644.
    pub mode: u32,
    /// `Some("hash")` etc.: the file is a lookup table source to be `postmap`ed with this type.
    /// Types read at open time (hash, btree, lmdb, cdb, dbm) need no reload; others
    /// (regexp, pcre, cidr, texthash) need `postmap`-less reload.
    pub map_type: Option<MapType>,
    /// Never shown in diffs or output (passwords, keys).
    pub secret: bool,
}

/// Everything the playbook wants for one instance on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredInstance {
    pub name: InstanceName,
    pub state: InstanceState,
    pub enabled: bool,
    /// `postmulti -G GROUP` at creation.
    pub group: Option<String>,
    /// Whole-file main.cf, when a template owns the file.
    pub main_cf: Option<String>,
    /// main.cf parameters merged with postconf semantics (applied after `main_cf`).
    /// `None` removes the parameter (`postconf -X`).
    pub main_cf_params: BTreeMap<String, Option<String>>,
    /// Whole-file master.cf, when a template owns the file.
    pub master_cf: Option<String>,
    /// master.cf entries merged with `postconf -M` semantics (applied after `master_cf`).
    pub master_services: Vec<MasterService>,
    /// Lookup tables and other owned files, in the order given.
    pub files: Vec<DesiredFile>,
    /// The playbook's own checks (`verify:`), run after every activation with the gate.
    pub verify: Vec<Check>,
}

/// A check of the playbook's (`verify:`) that an instance serves, after it was started,
/// reloaded or restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Connect to HOST:PORT; the greeting's code must be `expect`.
    Smtp {
        host: String,
        port: u16,
        expect: u16,
    },
    /// A shell command on the host; exit status 0 passes.
    Command(String),
}

impl DesiredInstance {
    pub fn new(name: InstanceName) -> Self {
        DesiredInstance {
            name,
            state: InstanceState::Present,
            enabled: true,
            group: None,
            main_cf: None,
            main_cf_params: BTreeMap::new(),
            master_cf: None,
            master_services: Vec::new(),
            files: Vec::new(),
            verify: Vec::new(),
        }
    }
}

/// The desired state of one host, instances in playbook order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredHost {
    pub instances: Vec<DesiredInstance>,
}
