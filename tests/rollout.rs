//! Rollouts in batches on a 5-host lab of their own (root needed): a broken canary stops the
//! rollout before anything else is touched; `--max-fail-percentage` judges over the fleet; a
//! healthy batched rollout ends like an unbatched one; the health gate catches an instance
//! that runs but never greets, and rolls it back.

mod common;

use std::path::Path;

use common::{host_sh, json_lines, lab_ok, postfleet, Lab};
use serde_json::Value;

/// `roll`, or the lab named by POSTFLEET_ROLL_LAB.
fn lab_name() -> String {
    std::env::var("POSTFLEET_ROLL_LAB")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "roll".into())
}
const HOSTS: [&str; 5] = ["h1", "h2", "h3", "h4", "h5"];

fn playbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apply/site.yml")
        .display()
        .to_string()
}

/// The lab's inventory with `out_process_limit: x` (which Postfix refuses) on `broken`.
fn inventory(lab: &Lab, dir: &Path, broken: &[&str]) -> String {
    let mut text = lab.inventory_yaml("root");
    for host in broken {
        let plain = format!("        {host}: {{ ");
        assert!(text.contains(&plain), "{host} in {text}");
        text = text.replace(
            &plain,
            &format!("        {host}: {{ out_process_limit: x, "),
        );
    }
    let path = dir.join(format!("inventory-{}.yml", broken.join("-")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Checksums of the instance's files and the PID of its master, per host: "untouched" means
/// this does not change.
fn state(lab: &Lab) -> Vec<String> {
    HOSTS
        .iter()
        .map(|h| {
            host_sh(
                lab,
                h,
                "sha256sum /etc/postfix/main.cf /etc/postfix-out/main.cf 2>&1; \
                 cat /var/spool/postfix/pid/master.pid /var/spool/postfix-out/pid/master.pid 2>&1",
            )
            .1
        })
        .collect()
}

/// `apply --json` with `args`: exit code, every JSON line.
fn apply(inv: &str, args: &[&str]) -> (i32, Vec<Value>) {
    let pb = playbook();
    let mut all = vec!["apply", "-i", inv, pb.as_str(), "--json"];
    all.extend_from_slice(args);
    let out = postfleet(&all);
    (out.status.code().unwrap_or(-1), json_lines(&out))
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

fn fresh_lab() -> Lab {
    lab_ok(&lab_name(), &["down", "--purge"]);
    lab_ok(&lab_name(), &["up", "--hosts", "5"]);
    Lab::open(&lab_name()).unwrap()
}

#[test]
#[ignore = "needs root and the lab"]
fn batches_stop_at_a_broken_canary_and_a_host_that_does_not_serve_is_rolled_back() {
    let lab = fresh_lab();
    let dir = tempfile::tempdir().unwrap();

    // The canary (h1) is broken: the rollout stops after its batch; h2-h5 are untouched.
    let before = state(&lab);
    let inv = inventory(&lab, dir.path(), &["h1"]);
    let (code, lines) = apply(&inv, &["--serial", "1,2,100%"]);
    assert_eq!(code, 2, "{lines:?}");
    let starts = of_type(&lines, "batch_start");
    assert_eq!(
        starts.len(),
        1,
        "only the canary's batch started: {starts:?}"
    );
    assert_eq!(starts[0]["hosts"], serde_json::json!(["h1"]));
    let stopped = of_type(&lines, "stopped");
    assert_eq!(
        stopped[0]["not_attempted"],
        serde_json::json!(["h2", "h3", "h4", "h5"]),
        "{stopped:?}"
    );
    let after = state(&lab);
    assert_eq!(
        &after[1..],
        &before[1..],
        "hosts after the canary were touched"
    );
    let plain = postfleet(&["apply", "-i", &inv, &playbook(), "--serial", "1,2,100%"]);
    let recap = String::from_utf8_lossy(&plain.stdout);
    assert!(
        recap.contains("not attempted (4 hosts: h2, h3, h4, h5)"),
        "the recap names them:\n{recap}"
    );

    // h3 broken, up to 25% of the fleet may fail: 1 of 5 is 20%, the rollout goes on.
    let inv = inventory(&lab, dir.path(), &["h3"]);
    let (code, lines) = apply(
        &inv,
        &["--serial", "1,2,100%", "--max-fail-percentage", "25"],
    );
    assert_eq!(code, 2, "h3 failed");
    assert_eq!(of_type(&lines, "batch_start").len(), 3, "{lines:?}");
    assert!(of_type(&lines, "stopped").is_empty(), "{lines:?}");
    let summary = lines.last().unwrap();
    for host in ["h1", "h2", "h4", "h5"] {
        assert_eq!(summary["hosts"][host]["failed"], 0, "{host}: {summary}");
    }

    // h2 and h3 broken (40%): more than 25% after the second batch; h4 and h5 not attempted.
    let inv = inventory(&lab, dir.path(), &["h2", "h3"]);
    let (code, lines) = apply(
        &inv,
        &["--serial", "1,2,100%", "--max-fail-percentage", "25"],
    );
    assert_eq!(code, 2);
    let stopped = of_type(&lines, "stopped");
    assert_eq!(
        stopped[0]["not_attempted"],
        serde_json::json!(["h4", "h5"]),
        "{lines:?}"
    );
    assert!(
        stopped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("2 of 5 hosts failed (40%)"),
        "{stopped:?}"
    );

    // A healthy rollout in batches ends like an unbatched one: the next run changes nothing.
    let inv = inventory(&lab, dir.path(), &[]);
    let (code, lines) = apply(&inv, &["--serial", "2"]);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(of_type(&lines, "batch_start").len(), 3, "2 + 2 + 1 hosts");
    let (code, lines) = apply(&inv, &[]);
    assert_eq!(code, 0);
    assert_eq!(lines.last().unwrap()["totals"]["changed"], 0, "{lines:?}");

    // A plan a reviewer can read: one block per distinct change with its hosts, parameter by
    // parameter; a host that drifted stands out.
    host_sh(
        &lab,
        "h4",
        "postconf -c /etc/postfix-out -e myhostname=drifted.invalid",
    );
    let out = postfleet(&[
        "plan",
        "-i",
        &inv,
        &playbook(),
        "-e",
        "out_process_limit=99",
    ]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    assert!(
        plan.contains("postfix-out: main.cf on h1-h3, h5 (4 hosts)\n"),
        "{plan}"
    );
    assert!(
        plan.contains("postfix-out: main.cf on h4 (1 host)\n"),
        "{plan}"
    );
    assert!(plan.contains("default_process_limit: 100 -> 99"), "{plan}");
    assert!(
        plan.contains("myhostname: drifted.invalid -> out.h4.invalid"),
        "{plan}"
    );
    let per_host = postfleet(&[
        "plan",
        "-i",
        &inv,
        &playbook(),
        "-e",
        "out_process_limit=99",
        "--per-host",
    ]);
    let text = String::from_utf8_lossy(&per_host.stdout);
    assert!(
        !text.contains("(4 hosts)") && text.contains("default_process_limit: 100 -> 99"),
        "{text}"
    );
    let (code, _) = apply(&inv, &["--limit", "h4"]);
    assert_eq!(code, 0, "h4 put right");

    // The health gate: an instance that starts but refuses every client at its greeting (a
    // restriction applied at connect time) is caught, rolled back, and serves again.
    let site = std::fs::read_to_string(playbook()).unwrap();
    let silent = site.replace(
        "private: \"n\", command: smtpd }",
        "private: \"n\", command: smtpd, options: { smtpd_delay_reject: \"no\", smtpd_client_restrictions: reject } }",
    );
    assert_ne!(silent, site, "the fixture changed shape");
    let pb = dir.path().join("silent.yml");
    std::fs::write(&pb, silent).unwrap();
    let pb = pb.display().to_string();
    let out = postfleet(&["apply", "-i", &inv, &pb, "--limit", "h1", "--json"]);
    let lines = json_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    let failed: Vec<&Value> = of_type(&lines, "step")
        .into_iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("does not serve: 127.0.0.1:2600: "),
        "{message}"
    );
    assert!(
        message.contains("rolled back to the previous configuration; the instance is serving"),
        "{message}"
    );
    let overrides = host_sh(&lab, "h1", "postconf -c /etc/postfix-out -P").1;
    assert!(
        !overrides.contains("smtpd_client_restrictions"),
        "the old master.cf is back: {overrides}"
    );
    let greeting = host_sh(
        &lab,
        "h1",
        "perl -MIO::Socket::IP -e '$s = IO::Socket::IP->new(PeerHost => \"127.0.0.1\", PeerPort => 2600) or exit 1; print scalar <$s>'",
    )
    .1;
    assert!(greeting.starts_with("220 "), "serving again: {greeting:?}");
    let (code, lines) = apply(&inv, &["--limit", "h1"]);
    assert_eq!(code, 0);
    assert_eq!(lines.last().unwrap()["totals"]["changed"], 0, "{lines:?}");

    // The playbook's own checks (verify:) run with the gate after an activation: a failing one
    // rolls the change back; passing ones let it stand.
    let with_checks = |checks: &str| {
        let text = site.replace(
            "      tables:\n",
            &format!("      verify:\n{checks}      tables:\n"),
        );
        assert_ne!(text, site, "the fixture changed shape");
        let path = dir.path().join("checks.yml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let failing = with_checks("        - command: \"exit 3\"\n");
    let limit = "postconf -c /etc/postfix-out -h default_process_limit";
    let out = postfleet(&[
        "apply",
        "-i",
        &inv,
        &failing,
        "--limit",
        "h1",
        "-e",
        "out_process_limit=98",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", json_lines(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("check `exit 3` failed"), "{text}");
    assert_eq!(host_sh(&lab, "h1", limit).1.trim(), "100", "rolled back");
    let passing = with_checks(
        "        - smtp: 127.0.0.1:2600\n        - command: test -s /etc/postfix-out/transport.db\n",
    );
    let out = postfleet(&[
        "apply",
        "-i",
        &inv,
        &passing,
        "--limit",
        "h1",
        "-e",
        "out_process_limit=98",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", json_lines(&out));
    assert_eq!(host_sh(&lab, "h1", limit).1.trim(), "98");
    lab_ok(&lab_name(), &["down", "--purge"]);
}
