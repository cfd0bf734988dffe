//! Inventory: hosts, groups and their variables, as Ansible has them: YAML, INI or the JSON
//! of `ansible-inventory --list`, several sources and directories merged, with the
//! group_vars/ and host_vars/ beside them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{InputError, SourcePos};

mod address;
mod build;
mod connection;
pub mod extra_vars;
mod ini;
mod json;
mod literal;
mod load;
mod pattern;
mod ranges;
mod show;
mod vars_files;
mod walk;
pub(crate) mod yaml;
mod yaml_inv;

pub use connection::{check_jump, split_hop};
pub use load::{load, load_all, parse};
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
    /// `ansible_connection` naming a connection other than SSH (`local`, `docker`...): the
    /// host can be listed, not worked on.
    pub unsupported: Option<Unsupported>,
}

/// A connection type postfleet does not have, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The `ansible_connection` value.
    pub setting: Setting<String>,
    /// Where it was set; None: `-e`.
    pub pos: Option<SourcePos>,
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
    /// Merged variables, with Ansible's precedence: all < parent groups < child groups <
    /// group_vars/ files < host < host_vars/ files < extra vars.
    pub vars: VarMap,
    pub connection: Connection,
}

impl Host {
    /// Whether postfleet can work on this host: an `ansible_connection` other than SSH is bad
    /// input, at the place it was set.
    pub fn check_reachable(&self) -> Result<(), InputError> {
        let Some(unsupported) = &self.connection.unsupported else {
            return Ok(());
        };
        let value = &unsupported.setting.value;
        let set_with = if unsupported.pos.is_none() {
            " (set with -e)"
        } else {
            ""
        };
        let mut error = InputError::new(format!(
            "ansible_connection={value}{set_with} is not supported: postfleet reaches hosts over SSH only"
        ))
        .host(&self.name)
        .hint("leave the host out of the play with --limit or hosts:, or set ansible_connection=ssh");
        error.pos = unsupported.pos.clone();
        Err(error)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The sources as given (files and directories), in order.
    pub sources: Vec<PathBuf>,
    /// Hosts in the order they first appear (source by source, then line and column).
    pub hosts: Vec<Host>,
    /// Group name -> names of its member hosts (directly or through children).
    pub groups: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod format_tests;
