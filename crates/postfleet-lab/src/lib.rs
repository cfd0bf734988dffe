//! `postfleet lab`: throwaway real mail hosts (sshd, Postfix, systemd) on this machine.
//!
//! Each host is a network namespace joined to the lab's bridge, an overlay root over a shared
//! Debian base tree, and either systemd (systemd-nspawn) or a small init as PID 1. A lab with
//! bastions (`up --bastion`) puts its mail hosts on internal networks the machine cannot
//! route to, reached through bastion hosts one behind the other. State lives
//! in `/var/lib/postfleet/labs/<lab>/`; kernel objects are named `pf<lab>-*`. [`Lab`] is the
//! read side for other code and tests; the `lab` subcommands change a lab.

mod base;
mod cleanup;
mod client;
mod delay;
mod error;
mod host;
mod internal;
mod net;
mod ops;
pub mod sink;
mod ssh_ca;
mod state;
mod sys;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Result};

pub use error::LabError;
pub use sink::SinkMessage;
pub use state::Names;
pub use state::{labs_dir, Mode, Release, Role, SINK_PORTS};
use state::{HostFiles, HostState, LabState};

/// The commands that change a lab, each taking the lab's names (from [`Names::new`]).
pub mod commands {
    pub use crate::delay::delayer_main;
    pub use crate::host::{boot_host_main, BootArgs};
    pub use crate::ops::{add, down, reset, rtt, sink, up, UpOptions};
    pub use crate::state::Names;
    pub use crate::{mails_listing, status};
}

/// The sink's messages as a table (or JSON lines), oldest first.
pub fn mails_listing(lab: &Lab, json: bool) -> String {
    let msgs = lab.sink_messages();
    if json {
        return msgs
            .iter()
            .map(|m| serde_json::to_string(m).unwrap_or_default() + "\n")
            .collect();
    }
    let rows: Vec<Vec<String>> = msgs
        .iter()
        .map(|m| {
            vec![
                m.seq.to_string(),
                format!("{:.3}", m.time),
                m.port.to_string(),
                m.mail_from.clone(),
                m.rcpt_to.join(","),
                m.helo.clone(),
                m.header("Subject").unwrap_or_default(),
            ]
        })
        .collect();
    postfleet_core::table::render(
        &["SEQ", "TIME", "PORT", "FROM", "TO", "HELO", "SUBJECT"],
        &rows,
    )
}

/// `lab status`: prints the lab's hosts.
pub fn status(names: &Names, json: bool) -> Result<()> {
    let Some(lab) = Lab::open_if_exists(names)? else {
        let left = cleanup::leftovers(names);
        if left.is_empty() {
            crate::error::bad_input!("lab '{}' does not exist", names.lab);
        }
        crate::error::bad_input!(
            "lab '{}' has no state but leftovers ({}); run `postfleet lab --lab {} down`",
            names.lab,
            left.join(", "),
            names.lab
        );
    };
    let hosts = lab.hosts();
    let bastions = lab.bastions();
    let sink_up = lab.sink_up();
    if json {
        let describe = |h: &LabHost| {
            let mut v = serde_json::json!({
                "name": h.name,
                "address": h.address.to_string(),
                "mode": h.mode,
                "release": h.release,
                "up": h.up,
            });
            if h.network > 0 {
                v["network"] = h.network.into();
                v["proxy_jump"] = lab.proxy_jump(&h.name).into();
            }
            if let Some(inner) = h.inner_address {
                v["inner_address"] = inner.to_string().into();
            }
            v
        };
        let mut value = serde_json::json!({
            "name": lab.name(),
            "subnet": lab.subnet(),
            "gateway": lab.gateway().to_string(),
            "state_dir": lab.state_dir(),
            "sink": { "up": sink_up, "ports": SINK_PORTS },
            "hosts": hosts.iter().map(describe).collect::<Vec<_>>(),
        });
        if !bastions.is_empty() {
            value["bastions"] = bastions.iter().map(describe).collect();
            value["internal_subnets"] = lab.internal_subnets().into();
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let up = hosts.iter().filter(|h| h.up).count();
    println!(
        "lab '{}': {} of {} hosts up, subnet {}, gateway {}, sink {} (ports {}-{})",
        lab.name(),
        up,
        hosts.len(),
        lab.subnet(),
        lab.gateway(),
        if sink_up { "up" } else { "down" },
        SINK_PORTS[0],
        SINK_PORTS[SINK_PORTS.len() - 1]
    );
    if !bastions.is_empty() {
        println!(
            "internal networks {} (no route from this machine), behind {}",
            lab.internal_subnets().join(", "),
            bastions
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(" then ")
        );
    }
    for h in bastions.iter().chain(&hosts) {
        let inner = h
            .inner_address
            .map(|a| format!(" (bastion, inner {a})"))
            .unwrap_or_default();
        println!(
            "{:<8} {:<15} {:<8} {:<13} {}{inner}",
            h.name,
            h.address,
            h.mode.as_str(),
            format!("{} ({})", h.release.suite(), h.release.version()),
            if h.up { "up" } else { "down" }
        );
    }
    Ok(())
}

/// One host of a lab, as seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    pub name: String,
    pub address: Ipv4Addr,
    pub mode: Mode,
    pub release: Release,
    /// Its PID 1 runs.
    pub up: bool,
    pub role: Role,
    /// 0: on the lab's bridge (reachable from this machine); k: on internal network k,
    /// reached through bastions 1..=k.
    pub network: u32,
    /// A bastion's address on the internal network behind it.
    pub inner_address: Option<Ipv4Addr>,
}

/// A lab that exists (is up, or was stopped without `--purge`): read side for code and tests.
#[derive(Debug, Clone)]
pub struct Lab {
    names: Names,
    state: LabState,
}

impl Lab {
    /// Opens lab `name` (e.g. "lab", "test"), reading its state afresh.
    pub fn open(name: &str) -> Result<Lab> {
        let names = Names::new(name)?;
        Lab::open_if_exists(&names)?.ok_or_else(|| {
            crate::error::bad_input_error!(
                "lab '{name}' does not exist; run `postfleet lab --lab {name} up --hosts N`"
            )
        })
    }

    fn open_if_exists(names: &Names) -> Result<Option<Lab>> {
        Ok(LabState::load(names)?.map(|state| Lab {
            names: names.clone(),
            state,
        }))
    }

    pub fn name(&self) -> &str {
        &self.names.lab
    }

    pub fn subnet(&self) -> String {
        self.state.subnet.to_string()
    }

    /// The gateway address (on the lab's bridge), where the sink listens.
    pub fn gateway(&self) -> Ipv4Addr {
        self.state.gateway
    }

    pub fn state_dir(&self) -> &Path {
        &self.names.state_dir
    }

    /// Private key that root and deploy accept on every host.
    pub fn key_path(&self) -> PathBuf {
        self.names.key_path()
    }

    /// known_hosts with every host's host keys under its address.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.names.known_hosts_path()
    }

    fn lab_host(&self, h: &HostState) -> LabHost {
        LabHost {
            name: h.name.clone(),
            address: h.address,
            mode: h.mode,
            release: h.release,
            up: self.init_of(&h.name).is_some(),
            role: h.role,
            network: h.network,
            inner_address: h.inner_address,
        }
    }

    /// The mail hosts (the fleet) in index order, with whether each runs now.
    pub fn hosts(&self) -> Vec<LabHost> {
        let mut hosts: Vec<&HostState> = self
            .state
            .hosts
            .iter()
            .filter(|h| h.role == Role::Mail)
            .collect();
        hosts.sort_by_key(|h| h.name[1..].parse::<u32>().unwrap_or(u32::MAX));
        hosts.into_iter().map(|h| self.lab_host(h)).collect()
    }

    /// The bastions, first hop first (none unless the lab was brought up with `--bastion`).
    pub fn bastions(&self) -> Vec<LabHost> {
        let mut bastions: Vec<&HostState> = self
            .state
            .hosts
            .iter()
            .filter(|h| h.role == Role::Bastion)
            .collect();
        bastions.sort_by_key(|h| h.network);
        bastions.into_iter().map(|h| self.lab_host(h)).collect()
    }

    /// A mail host or a bastion.
    pub fn host(&self, name: &str) -> Option<LabHost> {
        self.state.host(name).map(|h| self.lab_host(h))
    }

    /// Subnets of the internal networks, network 1 first (empty without bastions).
    pub fn internal_subnets(&self) -> Vec<String> {
        self.state.internal.iter().map(|s| s.to_string()).collect()
    }

    /// How `host` is reached: `root@A:22[,root@B:22]`, first hop first; None if directly.
    pub fn proxy_jump(&self, host: &str) -> Option<String> {
        client::proxy_jump(&self.state, self.state.host(host)?)
    }

    /// OpenSSH client configuration with a `Host` block per host (bastions included); mail
    /// hosts log in as `user`, bastions as root.
    pub fn ssh_config(&self, user: &str) -> String {
        client::ssh_config(&self.names, &self.state, user)
    }

    /// The lab's own copy of [`Lab::ssh_config`] for root (rewritten whenever its hosts
    /// change).
    pub fn ssh_config_path(&self) -> PathBuf {
        self.names.ssh_config_path()
    }

    fn init_of(&self, host: &str) -> Option<sys::ProcRef> {
        sys::ProcRef::read(&HostFiles::new(&self.names, host).init_pid()).filter(|p| p.alive())
    }

    /// Runs `cmd` with /bin/sh as root inside `host` (all its namespaces; no ssh involved).
    pub fn exec(&self, host: &str, cmd: &str) -> Result<Output> {
        let init = self.init_of(host).ok_or_else(|| {
            crate::error::bad_input_error!("{host} of lab '{}' is not up", self.names.lab)
        })?;
        let out = host::nsenter_command(init, &["/bin/sh", "-c", cmd])
            .stdin(std::process::Stdio::null())
            .output()?;
        Ok(out)
    }

    /// An `ssh` command line to `host` as `user` with the lab's key and strict host-key
    /// checking against the lab's known_hosts; append the remote command's words.
    pub fn ssh_command(&self, host: &str, user: &str) -> Result<Command> {
        let h = self.state.host(host).ok_or_else(|| {
            crate::error::bad_input_error!("lab '{}' has no host {host}", self.names.lab)
        })?;
        sys::require_tool("ssh", "openssh-client")?;
        if h.network > 0 {
            // `-o` and `-i` do not reach the ssh that each jump runs; a config file does.
            let config = self.ssh_config_path();
            if !config.exists() {
                sys::write_atomic(&config, self.ssh_config("root").as_bytes(), 0o644)?;
            }
            let mut cmd = Command::new("ssh");
            cmd.arg("-F")
                .arg(config)
                .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-l", user])
                .args(["--", &h.name]);
            return Ok(cmd);
        }
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(self.key_path())
            .args(["-o", "IdentitiesOnly=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts_path().display()
            ))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-l",
                user,
                "--",
            ])
            .arg(h.address.to_string());
        Ok(cmd)
    }

    /// Waits until no command is changing the lab (up, add, reset, rtt, down all hold its
    /// lock), e.g. before deciding that a host which is down is broken rather than resetting.
    pub fn wait_until_idle(&self) -> Result<()> {
        drop(sys::lock_file(&self.names.lock_path())?);
        Ok(())
    }

    /// The lab's mail sink runs.
    pub fn sink_up(&self) -> bool {
        sys::ProcRef::read(&self.names.sink_pid_path()).is_some_and(|p| p.alive())
    }

    /// Submits a message to `host`'s port 25 from inside the host (python3's smtplib is in
    /// the base), the way an application on that host would.
    pub fn submit(&self, host: &str, from: &str, to: &str, subject: &str) -> Result<()> {
        const SEND: &str = "import smtplib, sys\n\
            f, t, s = sys.argv[1:4]\n\
            with smtplib.SMTP('127.0.0.1', 25, timeout=30) as c:\n\
            \x20   c.sendmail(f, [t], f'From: {f}\\r\\nTo: {t}\\r\\nSubject: {s}\\r\\n\\r\\nsent by postfleet lab\\r\\n')\n";
        if [from, to, subject].iter().any(|w| w.contains('\0')) {
            error::bad_input!("a NUL byte in the message fields");
        }
        let line = postfleet_shell::Line::new()
            .text("python3 -c")
            .words([SEND, from, to, subject]);
        let out = self.exec(host, line.as_str())?;
        if !out.status.success() {
            bail!(
                "{host}: SMTP submission refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Messages the lab's sink has stored.
    pub fn sink_messages(&self) -> Vec<SinkMessage> {
        sink::read_messages(self.state_dir())
    }

    /// The lab as an inventory in postfleet's format: group `mx` with every mail host (each
    /// with its release in `lab_release`, and behind bastions its jump chain in
    /// `ssh_proxy_jump`), groups `lab_systemd` / `lab_plain` by boot mode and `lab_bookworm` /
    /// `lab_trixie` by release; `user` other than root gets `become: true`. Bastions are not
    /// hosts of the inventory.
    pub fn inventory_yaml(&self, user: &str) -> String {
        let mut y = String::from("all:\n  vars:\n");
        y.push_str(&format!("    ssh_user: {}\n", yaml_scalar(user)));
        if user != "root" {
            y.push_str("    become: true\n");
        }
        y.push_str(&format!(
            "    ssh_key_file: {}\n",
            yaml_scalar(&self.key_path().to_string_lossy())
        ));
        y.push_str(&format!(
            "    ssh_known_hosts_file: {}\n",
            yaml_scalar(&self.known_hosts_path().to_string_lossy())
        ));
        y.push_str(&format!("    lab_gateway: {}\n", self.gateway()));
        let ports: Vec<String> = SINK_PORTS.iter().map(|p| p.to_string()).collect();
        y.push_str(&format!("    lab_sink_ports: [{}]\n", ports.join(", ")));
        y.push_str("  children:\n    mx:\n      hosts:\n");
        let hosts = self.hosts();
        for h in &hosts {
            let jump = self
                .proxy_jump(&h.name)
                .map(|j| format!(", ssh_proxy_jump: {}", yaml_scalar(&j)))
                .unwrap_or_default();
            y.push_str(&format!(
                "        {}: {{ ssh_host: {}, lab_release: {}{jump} }}\n",
                h.name,
                h.address,
                h.release.suite()
            ));
        }
        let by_mode = [Mode::Systemd, Mode::Plain]
            .map(|m| (m.as_str(), hosts.iter().filter(move |h| h.mode == m)));
        for (group, members) in by_mode {
            push_group(&mut y, group, members);
        }
        for release in Release::ALL {
            push_group(
                &mut y,
                release.suite(),
                hosts.iter().filter(|h| h.release == release),
            );
        }
        y
    }
}

/// Appends group `lab_NAME` with `members`, unless there are none.
fn push_group<'a>(y: &mut String, name: &str, members: impl Iterator<Item = &'a LabHost>) {
    let mut members = members.peekable();
    if members.peek().is_none() {
        return;
    }
    y.push_str(&format!("    lab_{name}:\n      hosts:\n"));
    for h in members {
        y.push_str(&format!("        {}:\n", h.name));
    }
}

/// A YAML scalar: plain when safe, else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        && !s.starts_with(['-', '.']);
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_with(hosts: &[(&str, Mode, Release)]) -> Lab {
        let names = Names::new("unit").unwrap();
        let subnet: net::Subnet = "10.77.3.0/24".parse().unwrap();
        let state = LabState {
            name: "unit".into(),
            subnet,
            gateway: subnet.gateway(),
            rtt_ms: 0,
            hosts: hosts
                .iter()
                .enumerate()
                .map(|(i, (name, mode, release))| state::HostState {
                    name: name.to_string(),
                    index: i as u32 + 1,
                    address: subnet.host_address(i as u32 + 1).unwrap(),
                    mode: *mode,
                    release: *release,
                    base: PathBuf::from("/nonexistent/base"),
                    rtt_ms: 0,
                    role: Role::Mail,
                    network: 0,
                    inner_address: None,
                })
                .collect(),
            internal: Vec::new(),
        };
        Lab { names, state }
    }

    #[test]
    fn inventory_has_the_agreed_shape() {
        let lab = lab_with(&[
            ("h1", Mode::Systemd, Release::Trixie),
            ("h2", Mode::Plain, Release::Bookworm),
        ]);
        let key = lab.key_path().display().to_string();
        let known = lab.known_hosts_path().display().to_string();
        let expected = format!(
            "all:\n  vars:\n    ssh_user: root\n    ssh_key_file: {key}\n    \
             ssh_known_hosts_file: {known}\n    lab_gateway: 10.77.3.1\n    \
             lab_sink_ports: [2525, 2526, 2527, 2528, 2529]\n  children:\n    mx:\n      hosts:\n        \
             h1: {{ ssh_host: 10.77.3.11, lab_release: trixie }}\n        \
             h2: {{ ssh_host: 10.77.3.12, lab_release: bookworm }}\n    \
             lab_systemd:\n      hosts:\n        h1:\n    lab_plain:\n      hosts:\n        h2:\n    \
             lab_bookworm:\n      hosts:\n        h2:\n    lab_trixie:\n      hosts:\n        h1:\n"
        );
        assert_eq!(lab.inventory_yaml("root"), expected);
    }

    #[test]
    fn inventory_for_deploy_becomes_root() {
        let lab = lab_with(&[("h1", Mode::Systemd, Release::Trixie)]);
        let y = lab.inventory_yaml("deploy");
        assert!(
            y.contains("    ssh_user: deploy\n    become: true\n"),
            "{y}"
        );
        assert!(!y.contains("lab_plain"), "{y}");
    }

    #[test]
    fn yaml_scalars_are_quoted_when_needed() {
        assert_eq!(yaml_scalar("/var/lib/x"), "/var/lib/x");
        assert_eq!(yaml_scalar("a b"), "\"a b\"");
        assert_eq!(yaml_scalar("x: y"), "\"x: y\"");
        assert_eq!(yaml_scalar(""), "\"\"");
    }

    #[test]
    fn hosts_behind_a_bastion_get_their_jump_and_bastions_stay_out() {
        let mut lab = lab_with(&[("h1", Mode::Systemd, Release::Trixie)]);
        let inner: net::Subnet = "10.201.3.0/24".parse().unwrap();
        lab.state.internal = vec![inner];
        lab.state.hosts[0].network = 1;
        lab.state.hosts[0].address = inner.host_address(1).unwrap();
        let mut bastion = lab.state.hosts[0].clone();
        bastion.name = "bastion".into();
        bastion.index = 0;
        bastion.role = Role::Bastion;
        bastion.network = 0;
        bastion.address = lab.state.subnet.reserved_address(2);
        bastion.inner_address = Some(inner.reserved_address(1));
        lab.state.hosts.push(bastion);
        let y = lab.inventory_yaml("root");
        assert!(
            y.contains(
                "        h1: { ssh_host: 10.201.3.11, lab_release: trixie, \
                 ssh_proxy_jump: \"root@10.77.3.2:22\" }\n"
            ),
            "{y}"
        );
        assert!(!y.contains("bastion"), "{y}");
        assert_eq!(lab.hosts().len(), 1);
        assert_eq!(
            lab.bastions()[0].inner_address,
            Some(inner.reserved_address(1))
        );
        assert_eq!(lab.host("bastion").unwrap().role, Role::Bastion);
    }

    #[test]
    fn hosts_sort_by_number() {
        let lab = lab_with(&[
            ("h10", Mode::Systemd, Release::Trixie),
            ("h2", Mode::Systemd, Release::Bookworm),
        ]);
        let order: Vec<String> = lab.hosts().into_iter().map(|h| h.name).collect();
        assert_eq!(order, vec!["h2", "h10"]);
    }
}
