//! postfleet through bastions on real lab hosts (root needed): the mail hosts are on an
//! internal network this machine cannot route to (`lab up --bastion`), reached only through
//! the lab's bastion. How many TCP connections the bastion received is counted on the bastion
//! itself: an iptables rule in its network namespace counts the SYNs to its port 22.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{apply_summary, host_ok, lab_ok, postfleet, Lab};
use serde_json::Value;

fn newsletter() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/newsletter.yml")
        .display()
        .to_string()
}

/// The PID of a lab host's init (its namespaces).
fn init_pid(lab: &Lab, host: &str) -> String {
    let path = lab.state_dir().join("hosts").join(host).join("init.pid");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.split_whitespace().next().unwrap().to_string()
}

/// iptables (this machine's) in the network namespace of lab host `host`.
fn iptables(lab: &Lab, host: &str, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &init_pid(lab, host), "-n", "iptables", "-w"])
        .args(args)
        .output()
        .expect("nsenter runs");
    assert!(out.status.success(), "iptables {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const COUNT_SYNS: [&str; 10] = [
    "INPUT",
    "-p",
    "tcp",
    "--dport",
    "22",
    "--syn",
    "-m",
    "comment",
    "--comment",
    "postfleet-test",
];

/// Starts counting the TCP connections made to the bastion's sshd.
fn count_connections(lab: &Lab) {
    let mut rule = vec!["-I"];
    rule.extend(COUNT_SYNS);
    iptables(lab, "bastion", &rule);
}

/// TCP connections made to the bastion's sshd since [`count_connections`].
fn connections(lab: &Lab) -> u64 {
    let listing = iptables(lab, "bastion", &["-L", "INPUT", "-n", "-v", "-x"]);
    let line = listing
        .lines()
        .find(|l| l.contains("postfleet-test"))
        .unwrap_or_else(|| panic!("no counting rule: {listing}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

struct BastionLab {
    lab: Lab,
    dir: tempfile::TempDir,
}

impl BastionLab {
    /// Lab `name` with `hosts` mail hosts behind `hops` bastions, plus `direct` hosts on the
    /// lab's own subnet.
    fn up(name: &str, hosts: u32, hops: u32, direct: u32) -> BastionLab {
        lab_ok(name, &["down", "--purge"]);
        lab_ok(
            name,
            &[
                "up",
                "--hosts",
                &hosts.to_string(),
                "--bastion",
                &hops.to_string(),
            ],
        );
        if direct > 0 {
            lab_ok(name, &["add", "--direct", "--count", &direct.to_string()]);
        }
        BastionLab {
            lab: Lab::open(name).expect("the lab is up"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `lab inventory` (and its ssh_config file, when asked for).
    fn inventory(&self, ssh_config: Option<&Path>) -> String {
        let path = self.dir.path().join("inventory.yml");
        let mut args = vec!["inventory"];
        let config;
        if let Some(file) = ssh_config {
            config = file.display().to_string();
            args.extend(["--ssh-config", &config]);
        }
        std::fs::write(&path, lab_ok(self.lab.name(), &args)).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for BastionLab {
    fn drop(&mut self) {
        lab_ok(self.lab.name(), &["down", "--purge"]);
    }
}

fn directly_reachable(lab: &Lab, host: &str) -> bool {
    let address = lab.host(host).expect("a lab host").address;
    TcpStream::connect_timeout(&SocketAddr::from((address, 22)), Duration::from_secs(3)).is_ok()
}

#[test]
#[ignore = "needs root and the lab"]
fn hosts_only_a_bastion_reaches_converge_over_one_connection_to_it() {
    let bl = BastionLab::up("pfbt1", 3, 1, 1);
    let lab = &bl.lab;
    let behind = ["h1", "h2", "h3"];
    for host in behind {
        assert!(
            !directly_reachable(lab, host),
            "{host} is reachable directly"
        );
    }
    let inv = bl.inventory(None);
    let limit = "h1,h2,h3";
    count_connections(lab);
    let (code, summary, text) = apply_summary(&["-i", &inv, &newsletter(), "--limit", limit]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(summary["totals"]["hosts"], 3, "{summary}");
    assert_eq!(
        connections(lab),
        1,
        "TCP connections to the bastion in one run"
    );
    let (code, summary, text) = apply_summary(&["-i", &inv, &newsletter(), "--limit", limit]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(summary["totals"]["changed"], 0, "second run: {summary}");
    assert_eq!(connections(lab), 2);
    for host in behind {
        let active = host_ok(lab, host, "systemctl is-active postfix@newsletter.service");
        assert_eq!(active.trim(), "active", "{host}");
    }

    // The same fleet described by an ssh_config file alone, the inventory naming bare hosts.
    let config = bl.path("ssh_config");
    bl.inventory(Some(&config));
    let bare = bl.path("bare.yml");
    std::fs::write(
        &bare,
        format!(
            "all:\n  vars:\n    lab_gateway: {}\n  children:\n    mx:\n      hosts:\n        h1:\n        h2:\n        h3:\n",
            lab.gateway()
        ),
    )
    .unwrap();
    let bare = bare.display().to_string();
    let config_arg = config.display().to_string();
    let (code, summary, text) =
        apply_summary(&["-i", &bare, &newsletter(), "--ssh-config", &config_arg]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        summary["totals"]["changed"], 0,
        "already converged: {summary}"
    );
    assert_eq!(connections(lab), 3, "one more connection to the bastion");

    // The bastion goes down: each host behind it is unreachable because of it, by name; the
    // direct host is not held up.
    host_ok(lab, "bastion", "kill $(cat /run/sshd.pid)");
    let (code, summary, text) = apply_summary(&["-i", &inv, &newsletter()]);
    assert_eq!(code, 3, "{text}");
    let bastion = lab.host("bastion").unwrap().address;
    for host in behind {
        let result = &summary["hosts"][host];
        assert_eq!(result["unreachable"], true, "{host}: {summary}");
        let error = result["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("jump host root@{bastion}:22")),
            "{host}: {error}"
        );
    }
    assert_eq!(summary["hosts"]["h4"]["unreachable"], false, "{summary}");
    assert_eq!(summary["hosts"]["h4"]["failed"], 0, "{summary}");
    assert!(
        summary["hosts"]["h4"]["changed"].as_u64().unwrap() > 0,
        "{summary}"
    );
    // Tried once for the three hosts behind it (the SYN reaches the bastion; no sshd answers).
    assert_eq!(connections(lab), 4, "one attempt at the bastion");
}

#[test]
#[ignore = "needs root and the lab"]
fn two_hops_lead_to_the_host() {
    let bl = BastionLab::up("pfbt2", 1, 2, 0);
    let lab = &bl.lab;
    assert!(!directly_reachable(lab, "h1"));
    let inv = bl.inventory(None);
    let shown = postfleet(&["inventory", "-i", &inv, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let hops = shown["hosts"]["h1"]["connection"]["proxy_jump"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(hops.matches(" -> ").count(), 1, "two hops: {hops}");
    let (code, _, text) = apply_summary(&["-i", &inv, &newsletter()]);
    assert_eq!(code, 0, "{text}");
    let (code, summary, text) = apply_summary(&["-i", &inv, &newsletter()]);
    assert_eq!(
        (code, &summary["totals"]["changed"]),
        (0, &Value::from(0)),
        "{text}"
    );

    // The second hop's key is checked like any host's: not in known_hosts, refused.
    let second = lab
        .host("bastion2")
        .expect("a second bastion")
        .address
        .to_string();
    let known = std::fs::read_to_string(lab.known_hosts_path()).unwrap();
    let without: String = known
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(second.as_str()))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, known, "the lab's known_hosts lists {second}");
    let file = bl.path("known_hosts_without_bastion2");
    std::fs::write(&file, &without).unwrap();
    let text = std::fs::read_to_string(&inv).unwrap().replace(
        &lab.known_hosts_path().display().to_string(),
        &file.display().to_string(),
    );
    let inv2 = bl.path("inventory-without-bastion2.yml");
    std::fs::write(&inv2, text).unwrap();
    let (code, summary, text) = apply_summary(&["-i", &inv2.display().to_string(), &newsletter()]);
    assert_eq!(code, 3, "{text}");
    let error = summary["hosts"]["h1"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("jump host root@{second}:22")) && error.contains("is not known"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        without,
        "nothing learned"
    );
}
