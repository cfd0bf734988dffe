//! Where a lab keeps its state, what it records, and how its kernel objects are named.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::net::Subnet;
use super::sys::{self, ProcRef};

/// Ports the mail sink listens on, on the lab's gateway address.
pub const SINK_PORTS: [u16; 5] = [2525, 2526, 2527, 2528, 2529];

/// How a host boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// systemd as PID 1 (systemd-nspawn): systemctl and journald work, like a real server.
    Systemd,
    /// A small init under tini starting sshd and Postfix the sysvinit way: lighter, no systemctl.
    Plain,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Systemd => "systemd",
            Mode::Plain => "plain",
        }
    }
}

/// What a host is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A mail host (sshd and Postfix): the fleet.
    #[default]
    Mail,
    /// A jump host in front of an internal network (sshd with TCP forwarding, no Postfix).
    Bastion,
}

/// The most bastions one behind the other (`up --bastion HOPS`).
pub const MAX_HOPS: u32 = 4;

/// Name of the bastion of hop `hop` (1-based): `bastion`, then `bastion2`, `bastion3`...
pub fn bastion_name(hop: u32) -> String {
    if hop == 1 {
        "bastion".to_string()
    } else {
        format!("bastion{hop}")
    }
}

/// The hop of a bastion name, None for other hosts.
pub fn bastion_hop(host: &str) -> Option<u32> {
    match host.strip_prefix("bastion")? {
        "" => Some(1),
        n => n.parse().ok().filter(|h| *h >= 2),
    }
}

/// The Debian release a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Debian 12 (oldstable), Postfix 3.7.
    Bookworm,
    /// Debian 13 (stable), Postfix 3.10.
    Trixie,
}

impl Release {
    pub const ALL: [Release; 2] = [Release::Bookworm, Release::Trixie];

    /// The suite name debootstrap and apt know it by.
    pub fn suite(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }

    /// Debian's version number.
    pub fn version(self) -> &'static str {
        match self {
            Release::Bookworm => "12",
            Release::Trixie => "13",
        }
    }

    /// Lab state written before releases were recorded only knew bookworm.
    fn before_releases() -> Release {
        Release::Bookworm
    }
}

/// The parent of all labs' state dirs (env POSTFLEET_LAB_DIR overrides).
pub fn labs_dir() -> PathBuf {
    std::env::var_os("POSTFLEET_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/postfleet/labs"))
}

/// Where base trees are cached (env POSTFLEET_CACHE_DIR overrides).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("POSTFLEET_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/postfleet"))
}

/// A lab name: short, because it prefixes interface names (15 bytes at most in Linux).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 6
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        crate::error::bad_input!(
            "invalid lab name {name:?}: use 1 to 6 characters a-z 0-9, starting with a letter \
             (it prefixes network interface names)"
        );
    }
    Ok(())
}

/// Names of everything one lab owns, on disk and in the kernel.
#[derive(Debug, Clone)]
pub struct Names {
    pub lab: String,
    pub state_dir: PathBuf,
}

impl Names {
    pub fn new(lab: &str) -> Result<Names> {
        validate_name(lab)?;
        Ok(Names {
            lab: lab.to_string(),
            state_dir: labs_dir().join(lab),
        })
    }

    /// Prefix of the lab's network namespaces and interfaces: `pf<lab>-`.
    pub fn prefix(&self) -> String {
        format!("pf{}-", self.lab)
    }
    pub fn bridge(&self) -> String {
        format!("{}br", self.prefix())
    }
    /// Network namespace of a host (also the name of its veth end on the bridge).
    pub fn netns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix())
    }
    pub fn netns_path(&self, host: &str) -> PathBuf {
        Path::new("/run/netns").join(self.netns(host))
    }
    /// Short name of a host in interface names (15 bytes at most): `bastionK` is `bK`.
    pub fn link_tag(host: &str) -> String {
        match bastion_hop(host) {
            Some(hop) => format!("b{hop}"),
            None => host.to_string(),
        }
    }
    /// The host a link tag stands for (inverse of [`Names::link_tag`]).
    pub fn host_of_tag(tag: &str) -> String {
        match tag.strip_prefix('b').and_then(|n| n.parse::<u32>().ok()) {
            Some(hop) if hop >= 1 => bastion_name(hop),
            _ => tag.to_string(),
        }
    }
    /// A host's veth end on the lab's bridge, in the machine's namespace.
    pub fn bridge_link(&self, host: &str) -> String {
        format!("{}{}", self.prefix(), Names::link_tag(host))
    }
    /// Network namespace holding internal network `k`'s bridge (1-based).
    pub fn internal_netns(&self, k: u32) -> String {
        format!("{}net{k}", self.prefix())
    }
    /// Whether a name after the lab's prefix is an internal network's namespace.
    pub fn is_internal_netns(rest: &str) -> bool {
        rest.strip_prefix("net")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
    /// OpenSSH client configuration describing the lab (`ssh -F` it).
    pub fn ssh_config_path(&self) -> PathBuf {
        self.state_dir.join("ssh_config")
    }
    /// Directory name of the lab's cgroups in every hierarchy.
    pub fn cgroup(&self) -> String {
        format!("postfleet-{}", self.lab)
    }
    /// Held by every command that changes the lab; outside the state dir so purge can remove it.
    pub fn lock_path(&self) -> PathBuf {
        labs_dir().join(format!(".{}.lock", self.lab))
    }
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("lab.json")
    }
    pub fn key_path(&self) -> PathBuf {
        self.state_dir.join("keys/lab_ed25519")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.state_dir.join("known_hosts")
    }
    pub fn sink_pid_path(&self) -> PathBuf {
        self.state_dir.join("sink.pid")
    }
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.state_dir.join("hosts").join(host)
    }
    pub fn mail_domain(&self) -> String {
        format!("{}.test", self.lab)
    }
}

/// Files in a host's directory.
pub struct HostFiles {
    pub dir: PathBuf,
}

impl HostFiles {
    pub fn new(names: &Names, host: &str) -> HostFiles {
        HostFiles {
            dir: names.host_dir(host),
        }
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// Mount point of the overlay root (mounted only inside the host's own mount namespace).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// The boot helper (systemd-nspawn in systemd mode): the host's supervisor.
    pub fn supervisor_pid(&self) -> PathBuf {
        self.dir.join("supervisor.pid")
    }
    /// The host's PID 1 as seen from the machine.
    pub fn init_pid(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    pub fn delayer_pid(&self) -> PathBuf {
        self.dir.join("delayer.pid")
    }
    pub fn delayer_log(&self) -> PathBuf {
        self.dir.join("delayer.log")
    }
    /// Recorded processes of this host, alive or not.
    pub fn recorded_procs(&self) -> Vec<ProcRef> {
        [self.supervisor_pid(), self.init_pid(), self.delayer_pid()]
            .iter()
            .filter_map(|p| ProcRef::read(p))
            .collect()
    }
}

/// What `lab.json` records about one host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostState {
    pub name: String,
    pub index: u32,
    pub address: Ipv4Addr,
    pub mode: Mode,
    #[serde(default = "Release::before_releases")]
    pub release: Release,
    /// The base tree its upper layer was made over (empty in state from before releases).
    #[serde(default)]
    pub base: PathBuf,
    /// Added round-trip delay in ms (0: none).
    #[serde(default)]
    pub rtt_ms: u32,
    #[serde(default)]
    pub role: Role,
    /// The network `address` is on: 0 the lab's bridge (reached from the machine), k the
    /// internal network k (reached through bastions 1..=k).
    #[serde(default)]
    pub network: u32,
    /// A bastion's address on the internal network behind it (network + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_address: Option<Ipv4Addr>,
}

/// What `lab.json` records about the lab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    pub name: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// Delay given to `lab up --rtt-ms`, also used for hosts added or reset later.
    #[serde(default)]
    pub rtt_ms: u32,
    pub hosts: Vec<HostState>,
    /// Internal networks (bastion labs): network k is `internal[k - 1]`, behind bastion k.
    /// Nothing in the machine's namespace routes to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal: Vec<Subnet>,
}

impl LabState {
    pub fn load(names: &Names) -> Result<Option<LabState>> {
        let path = names.state_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; run `postfleet lab down --purge`",
                path.display()
            )
        })?;
        Ok(Some(state))
    }

    pub fn save(&self, names: &Names) -> Result<()> {
        fs::create_dir_all(&names.state_dir)
            .with_context(|| format!("cannot create {}", names.state_dir.display()))?;
        let text = serde_json::to_string_pretty(self)?;
        sys::write_atomic(&names.state_file(), text.as_bytes(), 0o644)
    }

    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The subnet of network `k` (0: the lab's bridge).
    pub fn network_subnet(&self, k: u32) -> Option<Subnet> {
        match k {
            0 => Some(self.subnet),
            k => self.internal.get(k as usize - 1).copied(),
        }
    }

    /// The network new mail hosts go on: behind the last bastion, if any.
    pub fn mail_network(&self) -> u32 {
        self.internal.len() as u32
    }

    /// The bastions a host on network `k` is reached through, first hop first.
    pub fn jump_chain(&self, k: u32) -> Vec<&HostState> {
        (1..=k)
            .filter_map(|hop| self.host(&bastion_name(hop)))
            .collect()
    }

    pub fn next_index(&self) -> u32 {
        self.hosts.iter().map(|h| h.index).max().unwrap_or(0) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_short_and_safe() {
        for good in ["lab", "test", "a1", "abcdef"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "abcdefg", "1ab", "a-b", "A", "a b", "../x"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names_fit_in_fifteen_bytes() {
        let names = Names::new("abcdef").unwrap();
        assert!(names.netns("h999").len() <= 15);
        assert!(names.bridge().len() <= 15);
        assert_eq!(names.bridge(), "pfabcdef-br");
        assert!(names.bridge_link("bastion").len() <= 15);
        assert_eq!(names.bridge_link("bastion"), "pfabcdef-b1");
    }

    #[test]
    fn bastion_names_and_tags_round_trip() {
        assert_eq!(bastion_name(1), "bastion");
        assert_eq!(bastion_name(2), "bastion2");
        for host in ["bastion", "bastion2", "h1", "h12"] {
            assert_eq!(Names::host_of_tag(&Names::link_tag(host)), host);
        }
        assert_eq!(bastion_hop("bastion1"), None);
        assert_eq!(bastion_hop("h1"), None);
        assert!(Names::is_internal_netns("net2"));
        assert!(!Names::is_internal_netns("net") && !Names::is_internal_netns("h1"));
    }
}
