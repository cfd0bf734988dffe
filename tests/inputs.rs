//! Bad input, tried systematically against a real host (issue 10): shell metacharacters in
//! every kind of string a user writes — `-e` values that reach main.cf, master.cf `-o`
//! arguments, table contents and table paths, inventory host vars — land literally or are
//! refused, and nothing they spell out ever runs (canary files, on the host and here).

mod common;

use postfleet_shell::{quote, Line};
use std::path::Path;

use common::{
    ensure_lab, host_ok, host_sh, json_lines, postfleet, reset_hosts, serial, write_inventory,
};

/// Payloads, each of which would create /tmp/<canary> if any shell ran it.
fn payloads(canary: &str) -> Vec<String> {
    vec![
        format!("$(touch /tmp/{canary})"),
        format!("`touch /tmp/{canary}`"),
        format!("x'; touch /tmp/{canary}; echo '"),
        format!("x\"; touch /tmp/{canary}; echo \""),
        format!("x; touch /tmp/{canary}"),
        format!("x | touch /tmp/{canary}"),
        format!("x && touch /tmp/{canary} #"),
        format!("$((1+1))${{IFS}}touch${{IFS}}/tmp/{canary}"),
        format!("x\ntouch /tmp/{canary}"),
        // one word, no `$` (which Postfix expands itself): these can land literally everywhere
        format!("x;>/tmp/{canary}"),
        format!("x`>/tmp/{canary}`"),
        format!("x&&>/tmp/{canary}||>/tmp/{canary}"),
        format!("{}$(touch /tmp/{canary})", "long".repeat(4096)),
    ]
}

fn playbook(dir: &Path) -> String {
    let path = dir.join("inputs.yml");
    std::fs::write(
        &path,
        "- hosts: h1\n  instances:\n    - name: postfix-in\n      main_cf:\n        \
         master_service_disable: \"\"\n        inet_interfaces: loopback-only\n        \
         myhostname: in.invalid\n        smtpd_banner: \"{{ payload }}\"\n        \
         transport_maps: hash:/etc/postfix-in/transport\n      master_cf:\n        \
         - { service: smtp, type: inet, state: absent }\n        \
         - { service: \"127.0.0.1:2700\", type: inet, private: \"n\", command: smtpd, \
         args: [\"-o\", \"syslog_name={{ payload }}\"] }\n      tables:\n        \
         - { path: transport, content: \"example.net {{ payload }}\\n\" }\n        \
         - { path: \"{{ payload_path }}\", content: \"x {{ payload }}\\n\" }\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
#[ignore = "needs root and the lab"]
fn shell_metacharacters_land_literally_or_are_refused_and_never_run() {
    let _serial = serial();
    let lab = ensure_lab();
    let dir = tempfile::tempdir().unwrap();
    let canary = format!("pf-canary-{}", std::process::id());
    let mut tried = 0;
    let mut literal = 0;
    let mut refused = 0;
    reset_hosts(&lab, &["h1"]);
    for payload in payloads(&canary) {
        // a table path may hold any of these too (without '/' and newlines it is one name)
        let path_payload = payload.replace(['/', '\n'], "_");
        let path_payload = &path_payload[..path_payload.len().min(200)];
        // inventory: the payload as a host var the templates read
        let inv = write_inventory(&lab, "root", dir.path());
        let text = std::fs::read_to_string(&inv).unwrap().replace(
            "  vars:\n",
            &format!(
                "  vars:\n    payload_path: {}\n",
                serde_json::to_string(&format!("t-{path_payload}")).unwrap()
            ),
        );
        std::fs::write(&inv, text).unwrap();
        let out = postfleet(&[
            "apply",
            "-i",
            inv.to_str().unwrap(),
            &playbook(dir.path()),
            "--limit",
            "h1",
            "-e",
            &format!("payload={}", quote(&payload)),
            "--json",
        ]);
        tried += 1;
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match code {
            Some(0) => {
                literal += 1;
                // what the host has is exactly what was written
                let banner = host_ok(&lab, "h1", "postconf -c /etc/postfix-in -h smtpd_banner");
                assert_eq!(banner.trim_end_matches('\n'), payload, "smtpd_banner");
                let table = host_ok(&lab, "h1", "cat /etc/postfix-in/transport");
                assert_eq!(table, format!("example.net {payload}\n"));
                let name = format!("/etc/postfix-in/t-{path_payload}");
                let cat = Line::new().text("cat").word(&name);
                let (c, listed, _) = host_sh(&lab, "h1", cat.as_str());
                assert_eq!((c, listed), (0, format!("x {payload}\n")), "{name}");
            }
            // refused as bad input (exit 4) or by Postfix's own validation (exit 2): the run
            // says so and the host keeps what it had
            Some(2) | Some(4) => {
                refused += 1;
                let lines = if code == Some(2) {
                    json_lines(&out)
                } else {
                    vec![]
                };
                assert!(
                    code == Some(4) || lines.iter().any(|l| l["status"] == "failed"),
                    "{payload:?}: {stderr}"
                );
            }
            other => panic!("{payload:?}: exit {other:?}: {stderr}"),
        }
        let (_, on_host, _) = host_sh(&lab, "h1", "ls /tmp | grep pf-canary || true");
        assert_eq!(on_host, "", "{payload:?} ran on the host");
        assert!(
            !Path::new(&format!("/tmp/{canary}")).exists(),
            "{payload:?} ran on the controller"
        );
    }
    eprintln!("bad inputs tried: {tried}; landed literally: {literal}; refused: {refused}; ran: 0");
    assert_eq!(literal + refused, tried);
    assert!(literal > 0, "no payload landed: the check is not looking");
    reset_hosts(&lab, &["h1"]);
}
