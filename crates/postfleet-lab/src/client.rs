//! How a client reaches the lab's hosts: the jump chain of a host behind bastions (as the
//! inventory's `ssh_proxy_jump` writes it) and an OpenSSH client configuration describing the
//! whole lab, so `ssh -F FILE h1` and postfleet use the same description.

use super::state::{HostState, LabState, Names, Role};

/// The user every hop logs in as on a bastion.
pub const JUMP_USER: &str = "root";

/// `root@A:22,root@B:22` for a host behind bastions A then B (first hop first); None for a
/// host on the lab's bridge.
pub fn proxy_jump(state: &LabState, host: &HostState) -> Option<String> {
    let chain = state.jump_chain(host.network);
    if chain.is_empty() {
        return None;
    }
    let hops: Vec<String> = chain
        .iter()
        .map(|b| format!("{JUMP_USER}@{}:22", b.address))
        .collect();
    Some(hops.join(","))
}

/// Bastions in hop order, then mail hosts by number: the order blocks are written in.
pub fn ordered(state: &LabState) -> Vec<&HostState> {
    let mut hosts: Vec<&HostState> = state.hosts.iter().collect();
    hosts.sort_by_key(|h| (h.role == Role::Mail, h.network, h.index));
    hosts
}

/// The OpenSSH client configuration of the lab: one `Host` block per host, with the lab's
/// key, its known_hosts only, strict host key checking, and `ProxyJump` through the
/// bastions (by their `Host` names) for hosts behind them. Each block also matches the
/// host's address, so `ssh -F FILE -J root@BASTION root@ADDRESS` finds the key too. Mail
/// hosts log in as `user`, bastions as root.
pub fn ssh_config(names: &Names, state: &LabState, user: &str) -> String {
    let key = config_path(&names.key_path().to_string_lossy());
    let known_hosts = config_path(&names.known_hosts_path().to_string_lossy());
    let mut text = format!(
        "# OpenSSH client configuration of postfleet lab '{}', written by postfleet lab.\n\
         # Use it as `ssh -F THIS_FILE h1` (or Include it).\n",
        names.lab
    );
    for h in ordered(state) {
        text.push_str(&format!(
            "\nHost {} {}\n    HostName {}\n",
            h.name, h.address, h.address
        ));
        let chain: Vec<&str> = state
            .jump_chain(h.network)
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        if !chain.is_empty() {
            text.push_str(&format!("    ProxyJump {}\n", chain.join(",")));
        }
        let login = if h.role == Role::Bastion {
            JUMP_USER
        } else {
            user
        };
        text.push_str(&format!(
            "    User {login}\n    Port 22\n    IdentityFile {key}\n    IdentitiesOnly yes\n    \
             UserKnownHostsFile {known_hosts}\n    GlobalKnownHostsFile /dev/null\n    \
             StrictHostKeyChecking yes\n"
        ));
    }
    text
}

/// A path as one ssh_config word: `%` is a token there, blanks need quotes.
fn config_path(path: &str) -> String {
    let escaped = path.replace('%', "%%");
    if escaped.contains(char::is_whitespace) {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Subnet;
    use crate::state::{Mode, Release};
    use std::path::PathBuf;

    fn host(name: &str, role: Role, network: u32, address: &str) -> HostState {
        HostState {
            name: name.into(),
            index: name
                .strip_prefix('h')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            address: address.parse().unwrap(),
            mode: Mode::Plain,
            release: Release::Trixie,
            base: PathBuf::from("/nonexistent"),
            rtt_ms: 0,
            role,
            network,
            inner_address: None,
        }
    }

    fn two_hop_lab() -> LabState {
        let subnet: Subnet = "10.77.3.0/24".parse().unwrap();
        LabState {
            name: "unit".into(),
            subnet,
            gateway: subnet.gateway(),
            rtt_ms: 0,
            hosts: vec![
                host("h1", Role::Mail, 2, "10.202.3.11"),
                host("bastion2", Role::Bastion, 1, "10.201.3.2"),
                host("bastion", Role::Bastion, 0, "10.77.3.2"),
            ],
            internal: vec![
                "10.201.3.0/24".parse().unwrap(),
                "10.202.3.0/24".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn jump_chains_go_first_hop_first() {
        let lab = two_hop_lab();
        assert_eq!(
            proxy_jump(&lab, &lab.hosts[0]).as_deref(),
            Some("root@10.77.3.2:22,root@10.201.3.2:22")
        );
        assert_eq!(
            proxy_jump(&lab, &lab.hosts[1]).as_deref(),
            Some("root@10.77.3.2:22")
        );
        assert_eq!(proxy_jump(&lab, &lab.hosts[2]), None);
    }

    #[test]
    fn ssh_config_names_every_host_and_its_jumps() {
        let names = Names::new("unit").unwrap();
        let text = ssh_config(&names, &two_hop_lab(), "root");
        let blocks: Vec<&str> = text.split("\nHost ").skip(1).collect();
        assert_eq!(blocks.len(), 3, "{text}");
        assert!(blocks[0].starts_with("bastion 10.77.3.2\n    HostName 10.77.3.2\n    User root\n"));
        assert!(blocks[1]
            .starts_with("bastion2 10.201.3.2\n    HostName 10.201.3.2\n    ProxyJump bastion\n"));
        assert!(blocks[2].starts_with(
            "h1 10.202.3.11\n    HostName 10.202.3.11\n    ProxyJump bastion,bastion2\n"
        ));
        let key = names.key_path().display().to_string();
        for block in blocks {
            assert!(
                block.contains(&format!("    IdentityFile {key}\n")),
                "{block}"
            );
            assert!(block.contains("    StrictHostKeyChecking yes\n"), "{block}");
            assert!(block.contains("    IdentitiesOnly yes\n"), "{block}");
        }
        let deploy = ssh_config(&names, &two_hop_lab(), "deploy");
        assert_eq!(deploy.matches("    User deploy\n").count(), 1, "{deploy}");
        assert_eq!(deploy.matches("    User root\n").count(), 2, "{deploy}");
    }

    #[test]
    fn config_paths_escape_tokens_and_blanks() {
        assert_eq!(config_path("/a/b"), "/a/b");
        assert_eq!(config_path("/a b/%h"), "\"/a b/%%h\"");
    }
}
