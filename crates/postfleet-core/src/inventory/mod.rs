//! Inventory: hosts, groups and their variables, in Ansible's YAML shape.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod extra_vars;
mod load;
mod pattern;
mod ranges;
mod show;
pub(crate) mod yaml;

pub use load::{load, parse};
pub use pattern::{select, HostPattern};
pub use show::describe;

/// Variables as template values: JSON values so tera can take them as they are.
pub type VarMap = serde_json::Map<String, serde_json::Value>;

/// How to reach one host: resolved from its variables (our names or the `ansible_*` ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Address or DNS name to connect to (`ssh_host` / `ansible_host`; default: the host's name).
    pub address: String,
    /// `ssh_port` / `ansible_port`; default 22.
    pub port: u16,
    /// `ssh_user` / `ansible_user`; default: root.
    pub user: String,
    /// `ssh_key_file` / `ansible_ssh_private_key_file`, absolute (relative ones are taken
    /// from the inventory file's directory). Empty: the agent and ~/.ssh/id_{ed25519,ecdsa,rsa}.
    pub key_files: Vec<PathBuf>,
    /// `become` / `ansible_become`: run remote work through `sudo -n` (ignored for root).
    pub become_root: bool,
    /// `ssh_known_hosts_file` / `ansible_ssh_known_hosts_file`, absolute. None: ~/.ssh/known_hosts.
    pub known_hosts: Option<PathBuf>,
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
