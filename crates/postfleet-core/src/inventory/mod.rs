//! Inventory: hosts, groups and their variables, in Ansible's YAML shape.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod extra_vars;
mod load;
mod pattern;
mod ranges;
mod show;
pub(crate) mod yaml;

pub use load::{load, parse, split_hop};
pub use pattern::{select, HostPattern};
pub use show::describe;

/// Variables as template values: JSON values so tera can take them as they are.
pub type VarMap = serde_json::Map<String, serde_json::Value>;

/// How to reach one host, as its variables say (our names or the `ansible_*` ones). What
/// the inventory leaves unset (None) is filled by the OpenSSH client configuration, then by
/// the defaults (the host's name, port 22, root), when the controller resolves the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connection {
    /// `ssh_host` / `ansible_host`: address or DNS name to connect to.
    pub address: Option<Setting<String>>,
    /// `ssh_port` / `ansible_port`.
    pub port: Option<Setting<u16>>,
    /// `ssh_user` / `ansible_user`.
    pub user: Option<Setting<String>>,
    /// `ssh_key_file` / `ansible_ssh_private_key_file`, absolute (relative ones are taken
    /// from the inventory file's directory).
    pub key_files: Option<Setting<Vec<PathBuf>>>,
    /// `become` / `ansible_become`: run remote work through `sudo -n` (ignored for root).
    pub become_root: bool,
    /// `ssh_known_hosts_file` / `ansible_ssh_known_hosts_file`, absolute.
    pub known_hosts: Option<Setting<PathBuf>>,
    /// `ssh_proxy_jump`, or `-J`/`-o ProxyJump=` in `ansible_ssh_common_args`: `none`, or
    /// `[user@]host[:port]` hops separated by commas, as written.
    pub proxy_jump: Option<Setting<String>>,
    /// `ssh_config_file`: the OpenSSH client configuration to read instead of
    /// `~/.ssh/config` and `/etc/ssh/ssh_config`; None inside: `none`, read no file.
    pub ssh_config_file: Option<Setting<Option<PathBuf>>>,
}

/// A connection setting and where the inventory set it: `FILE:LINE:COL (VAR)`, or
/// `-e VAR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    /// Every group the host belongs to, ancestors included, `all` first, then by depth.
    pub groups: Vec<String>,
    /// Merged variables: all < parent groups < child groups < host < extra vars.
    pub vars: VarMap,
    pub connection: Connection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub path: PathBuf,
    /// Hosts in the order they first appear in the file.
    pub hosts: Vec<Host>,
    /// Group name -> names of its member hosts (directly or through children).
    pub groups: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests;
