//! Drift against real lab hosts: an apply records what it left; a hand edit afterwards is
//! reported as drift (by `postfleet drift`, which changes nothing, and by the next apply,
//! which puts it right); a host left alone reports none, and a no-change run writes nothing.

mod common;

use std::path::{Path, PathBuf};

use common::{ensure_lab, host_ok, json_lines, postfleet, serial, write_inventory, Lab};
use serde_json::Value;

fn playbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/newsletter.yml")
}

/// `postfleet COMMAND -i INV playbook --limit HOST --json`: exit code and every line.
fn run(command: &str, inv: &str, host: &str) -> (i32, Vec<Value>) {
    let pb = playbook();
    let out = postfleet(&[
        command,
        "-i",
        inv,
        pb.to_str().unwrap(),
        "--limit",
        host,
        "--json",
    ]);
    let lines = json_lines(&out);
    assert!(
        lines.last().is_some_and(|l| l["type"] == "summary"),
        "no summary: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), lines)
}

fn drift_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "drift").collect()
}

/// What the host's state dir holds of postfleet's records, with their modification times.
fn records(lab: &Lab, host: &str) -> String {
    host_ok(
        lab,
        host,
        "cd /var/lib/postfleet/applied && stat -c '%n %a %Y' * && cat /var/lib/postfleet/generation",
    )
}

fn drift_round_trip(host: &str) {
    let lab = ensure_lab();
    let dir = tempfile::tempdir().unwrap();
    let inv = write_inventory(&lab, "root", dir.path());
    let inv = inv.to_str().unwrap();

    let (code, _) = run("apply", inv, host);
    assert_eq!(code, 0);
    // Converged and recorded: a run now finds no drift, changes nothing and writes nothing
    // (not even the records).
    let (code, lines) = run("apply", inv, host);
    let before = records(&lab, host);
    let (code2, lines2) = run("apply", inv, host);
    for (code, lines) in [(code, &lines), (code2, &lines2)] {
        let summary = lines.last().unwrap();
        assert_eq!(code, 0, "{summary}");
        assert_eq!(summary["totals"]["changed"], 0, "{summary}");
        assert_eq!(summary["totals"]["drift"], 0, "{summary}");
        assert_eq!(summary["status"], "in sync", "{summary}");
        assert!(drift_lines(lines).is_empty());
    }
    assert_eq!(
        records(&lab, host),
        before,
        "a no-change run wrote a record"
    );
    assert!(before.contains("postfix-newsletter 600"), "{before}");
    assert!(before.contains("default 600"), "{before}");

    // Hand edits: the newsletter instance's relay, and the mode of a table of the default's.
    let relay_before = host_ok(
        &lab,
        host,
        "postconf -c /etc/postfix-newsletter -h relayhost",
    );
    let relay_before = relay_before.trim();
    host_ok(
        &lab,
        host,
        "postconf -c /etc/postfix-newsletter -e 'relayhost = [192.0.2.7]:25' && chmod 666 /etc/postfix/transport",
    );

    // `drift` reports both, with what was and is, and changes nothing: exit 5.
    let (code, lines) = run("drift", inv, host);
    assert_eq!(code, 5, "{lines:?}");
    let drift = drift_lines(&lines);
    assert_eq!(drift.len(), 2, "{drift:?}");
    let relay = drift
        .iter()
        .find(|d| d["setting"] == "main.cf `relayhost`")
        .expect("the relayhost drift");
    assert_eq!(relay["host"], host);
    assert_eq!(relay["instance"], "postfix-newsletter");
    assert_eq!(relay["was"], relay_before);
    assert_eq!(relay["now"], "[192.0.2.7]:25");
    assert!(relay["since"].as_str().unwrap().ends_with(" UTC"));
    let message = relay["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "main.cf `relayhost` of postfix-newsletter on {host} changed outside postfleet since the apply of "
        )),
        "{message}"
    );
    let table = drift
        .iter()
        .find(|d| d["setting"] == "file /etc/postfix/transport")
        .expect("the table's drift");
    assert!(table["was"].as_str().unwrap().starts_with("mode 644"));
    assert!(table["now"].as_str().unwrap().starts_with("mode 666"));
    assert!(
        lines.iter().all(|l| l["type"] != "step"),
        "drift shows no steps"
    );
    assert_eq!(lines.last().unwrap()["status"], "drifted");
    let still = host_ok(
        &lab,
        host,
        "postconf -c /etc/postfix-newsletter -h relayhost",
    );
    assert_eq!(still.trim(), "[192.0.2.7]:25", "drift changed the host");

    // Plain output says it too, on a line of its own.
    let pb = playbook();
    let out = postfleet(&[
        "drift",
        "-i",
        inv,
        pb.to_str().unwrap(),
        "--limit",
        host,
        "--output",
        "plain",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "{host} | DRIFT | postfix-newsletter: main.cf `relayhost`"
        ))),
        "{text}"
    );

    // The next apply reports the drift and puts it right.
    let (code, lines) = run("apply", inv, host);
    let summary = lines.last().unwrap();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(drift_lines(&lines).len(), 2);
    assert_eq!(summary["status"], "drift fixed", "{summary}");
    assert_eq!(summary["hosts"][host]["drift"], 2);
    let relay_now = host_ok(
        &lab,
        host,
        "postconf -c /etc/postfix-newsletter -h relayhost",
    );
    assert_eq!(relay_now.trim(), relay_before);
    let mode = host_ok(&lab, host, "stat -c %a /etc/postfix/transport");
    assert_eq!(mode.trim(), "644");

    // And then all is quiet again.
    let (code, lines) = run("drift", inv, host);
    assert_eq!(code, 0, "{lines:?}");
    assert!(drift_lines(&lines).is_empty());
    assert_eq!(lines.last().unwrap()["status"], "in sync");
}

#[test]
#[ignore = "needs root and the lab"]
fn a_hand_edit_is_drift_on_debian_13() {
    let _serial = serial();
    drift_round_trip("h1");
}

#[test]
#[ignore = "needs root and the lab"]
fn a_hand_edit_is_drift_on_debian_12() {
    let _serial = serial();
    drift_round_trip("h3");
}
