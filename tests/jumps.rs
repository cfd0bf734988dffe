//! Jump hosts (ProxyJump) and ssh_config on real lab hosts: h1 of the test lab serves as the
//! jump host for h2 and h3. What is asserted is what the hosts saw: their sshd's log says who
//! connected from where, so one connection to the jump host and every host's connection
//! coming from the jump host's address are facts, not assumptions.

mod common;

use std::path::Path;

use common::{apply_summary, ensure_lab, host_ok, postfleet, serial, Lab};
use serde_json::Value;

fn apply_playbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apply/site.yml")
        .display()
        .to_string()
}

fn address(lab: &Lab, host: &str) -> String {
    lab.host(host).expect("a lab host").address.to_string()
}

/// sshd's "Accepted publickey ... from ADDRESS port" lines on `host` so far.
fn logins_from(lab: &Lab, host: &str, from: &str) -> usize {
    // --sync: every message logged so far is in the journal before it is read.
    let log = host_ok(
        lab,
        host,
        "journalctl --sync; journalctl -q --no-pager -o cat | grep '^Accepted publickey' || true",
    );
    let needle = format!(" from {from} port ");
    log.lines()
        .filter(|l| l.starts_with("Accepted publickey") && l.contains(&needle))
        .count()
}

/// The test lab's inventory with h2 and h3 behind `jump` (the `ssh_proxy_jump` var), h4
/// direct, in group `mx`.
fn inventory_behind(lab: &Lab, dir: &Path, jump: &str) -> String {
    let path = dir.join("inventory.yml");
    let text = format!(
        "all:\n  vars:\n    ssh_user: root\n    ssh_key_file: {key}\n    ssh_known_hosts_file: {kh}\n\
         \x20   lab_gateway: {gw}\n  children:\n    mx:\n      hosts:\n\
         \x20       h2: {{ ssh_host: {h2}, ssh_proxy_jump: '{jump}' }}\n\
         \x20       h3: {{ ssh_host: {h3}, ssh_proxy_jump: '{jump}' }}\n\
         \x20       h4: {{ ssh_host: {h4} }}\n",
        key = lab.key_path().display(),
        kh = lab.known_hosts_path().display(),
        gw = lab.gateway(),
        h2 = address(lab, "h2"),
        h3 = address(lab, "h3"),
        h4 = address(lab, "h4"),
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
#[ignore = "needs root and the lab"]
fn hosts_behind_a_jump_host_converge_over_one_connection_to_it() {
    let _serial = serial();
    let lab = ensure_lab();
    let dir = tempfile::tempdir().unwrap();
    let gateway = lab.gateway().to_string();
    let jump = address(&lab, "h1");
    let inv = inventory_behind(&lab, dir.path(), &format!("root@{jump}"));
    let before_jump = logins_from(&lab, "h1", &gateway);
    let before: Vec<usize> = ["h2", "h3"]
        .iter()
        .map(|h| logins_from(&lab, h, &jump))
        .collect();
    let pb = apply_playbook();
    let (code, summary, text) = apply_summary(&["-i", &inv, &pb, "--limit", "h2,h3"]);
    assert_eq!(code, 0, "{text}");
    let (code, summary2, text2) = apply_summary(&["-i", &inv, &pb, "--limit", "h2,h3"]);
    assert_eq!(code, 0, "{text2}");
    assert_eq!(summary2["totals"]["changed"], 0, "second run: {summary2}");
    // Two runs: one connection each to the jump host, for both hosts behind it.
    assert_eq!(
        logins_from(&lab, "h1", &gateway) - before_jump,
        2,
        "logins on the jump host; first run: {summary}"
    );
    // Each host was reached from the jump host (twice: once per run).
    for (host, was) in ["h2", "h3"].iter().zip(before) {
        assert_eq!(
            logins_from(&lab, host, &jump) - was,
            2,
            "{host}: logins from {jump}"
        );
    }
    // Fleet operations go through it too.
    let out = postfleet(&["status", "-i", &inv, "--limit", "h2,h3", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(logins_from(&lab, "h1", &gateway) - before_jump, 3);
}

#[test]
#[ignore = "needs root and the lab"]
fn a_jump_host_that_is_down_fails_the_hosts_behind_it_by_name_and_no_other() {
    let _serial = serial();
    let lab = ensure_lab();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of the gateway: a jump host that is down.
    let dead = format!("root@{}:1", lab.gateway());
    let inv = inventory_behind(&lab, dir.path(), &dead);
    let (code, summary, text) = apply_summary(&["-i", &inv, &apply_playbook()]);
    assert_eq!(code, 3, "unreachable hosts: {text}");
    for host in ["h2", "h3"] {
        let result = &summary["hosts"][host];
        assert_eq!(result["unreachable"], true, "{host}: {summary}");
        let error = result["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("jump host {dead}")),
            "{host} names the jump host: {error}"
        );
    }
    assert_eq!(summary["hosts"]["h4"]["unreachable"], false, "{summary}");
    assert_eq!(summary["hosts"]["h4"]["failed"], 0, "{summary}");
}

#[test]
#[ignore = "needs root and the lab"]
fn a_jump_host_with_an_unknown_key_is_refused() {
    let _serial = serial();
    let lab = ensure_lab();
    let dir = tempfile::tempdir().unwrap();
    let jump = address(&lab, "h1");
    // The jump host's own known_hosts (from ssh_config) does not list it.
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host bastion\n  HostName {jump}\n  User root\n  UserKnownHostsFile {}\n",
            empty.display()
        ),
    )
    .unwrap();
    let inv = inventory_behind(&lab, dir.path(), "bastion");
    let config = config.display().to_string();
    let (code, summary, text) = apply_summary(&[
        "-i",
        &inv,
        &apply_playbook(),
        "--limit",
        "h2",
        "--ssh-config",
        &config,
    ]);
    assert_eq!(code, 3, "{text}");
    let error = summary["hosts"]["h2"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("jump host root@{jump}:22")) && error.contains("is not known"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "nothing learned"
    );
}

#[test]
#[ignore = "needs root and the lab"]
fn an_ssh_config_file_and_bare_names_are_enough_and_ssh_agrees() {
    let _serial = serial();
    let lab = ensure_lab();
    let dir = tempfile::tempdir().unwrap();
    let jump = address(&lab, "h1");
    let config = dir.path().join("ssh_config");
    let mut text = String::new();
    for host in ["h2", "h3"] {
        text.push_str(&format!(
            "Host {host}\n  HostName {}\n  ProxyJump bastion\n",
            address(&lab, host)
        ));
    }
    text.push_str(&format!(
        "Host bastion\n  HostName {jump}\nHost *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
        lab.key_path().display(),
        lab.known_hosts_path().display()
    ));
    std::fs::write(&config, text).unwrap();
    // No connection vars at all, and the file named by the inventory.
    let inv = dir.path().join("inventory.yml");
    std::fs::write(
        &inv,
        format!(
            "all:\n  vars:\n    ssh_config_file: {}\n    lab_gateway: {}\n  children:\n    mx:\n      hosts:\n        h2:\n        h3:\n",
            config.display(),
            lab.gateway()
        ),
    )
    .unwrap();
    let inv = inv.display().to_string();
    let before = logins_from(&lab, "h2", &jump);
    let (code, _, out) = apply_summary(&["-i", &inv, &apply_playbook()]);
    assert_eq!(code, 0, "{out}");
    let (code, summary, out) = apply_summary(&["-i", &inv, &apply_playbook()]);
    assert_eq!(
        (code, &summary["totals"]["changed"]),
        (0, &Value::from(0)),
        "{out}"
    );
    assert_eq!(logins_from(&lab, "h2", &jump) - before, 2);
    // OpenSSH reads the same description the same way.
    let ssh = std::process::Command::new("ssh")
        .args([
            "-F",
            &config.display().to_string(),
            "-o",
            "BatchMode=yes",
            "h2",
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), "h2", "{ssh:?}");
    // `postfleet inventory` says where each setting came from.
    let shown = postfleet(&["inventory", "-i", &inv, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let conn = &shown["hosts"]["h2"]["connection"];
    assert_eq!(conn["address"]["value"], address(&lab, "h2").as_str());
    assert_eq!(
        conn["address"]["from"],
        format!("{}:2", config.display()).as_str()
    );
    assert_eq!(
        conn["proxy_jump"]["value"],
        format!("root@{jump}:22").as_str()
    );
    assert!(
        conn["ssh_config"]["from"]
            .as_str()
            .unwrap()
            .contains("(ssh_config_file)"),
        "{conn}"
    );
}
