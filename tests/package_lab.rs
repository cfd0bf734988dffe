//! The .deb on a bastion, against real lab hosts: built by scripts/build-deb, installed with
//! dpkg into lab host h2, set up the way the README's "On a bastion" says (an Ansible INI
//! inventory, the playbook, the env file, the postfleet user's key and known_hosts), its
//! timer enabled and fired once against h1 and h3. The journal holds the run's JSON lines;
//! a hand edit on h1 then shows as drift on the next run, which puts it right, and the unit's
//! result tells the three outcomes apart.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{build_deb, ensure_lab, host_ok, host_sh, serial, Lab};
use serde_json::Value;

const BASTION: &str = "h2";

/// Takes the package off the bastion however the test ends: an enabled timer must not fire
/// into the tests that come after.
struct Installed<'a>(&'a Lab);

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let _ = self.0.exec(
            BASTION,
            "systemctl disable --now postfleet-apply@fleet.timer >/dev/null 2>&1; \
             dpkg --purge postfleet >/dev/null 2>&1; \
             rm -rf /etc/postfleet /etc/systemd/system/postfleet-apply@.timer.d \
                    /var/lib/postfleet-controller; \
             userdel postfleet >/dev/null 2>&1; systemctl daemon-reload; \
             systemctl reset-failed postfleet-apply@fleet.service >/dev/null 2>&1",
        );
    }
}

/// Copies a file of this machine into the bastion (over the lab's ssh, as root).
fn copy_in(lab: &Lab, local: &Path, remote: &str) {
    let mut ssh = lab.ssh_command(BASTION, "root").unwrap();
    ssh.arg(format!("cat > '{remote}'"))
        .stdin(std::fs::File::open(local).unwrap())
        .stdout(Stdio::null());
    let status = ssh.status().unwrap();
    assert!(status.success(), "copying {} to {remote}", local.display());
}

/// Writes `text` to `path` on the bastion.
fn write_in(lab: &Lab, path: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("file");
    std::fs::write(&local, text).unwrap();
    copy_in(lab, &local, path);
}

/// The journal of the service's last run: its JSON lines (the run's stdout).
fn last_run_lines(lab: &Lab, since_cursor: &str) -> Vec<Value> {
    let out = host_ok(
        lab,
        BASTION,
        &format!(
            "journalctl --sync; journalctl -u postfleet-apply@fleet.service -o cat --no-pager \
             --after-cursor '{since_cursor}'"
        ),
    );
    let lines: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.last().is_some_and(|l| l["type"] == "summary"),
        "the run's journal holds no JSON summary:\n{out}"
    );
    lines
}

/// The journal's cursor now: later reads see only what comes after.
fn cursor(lab: &Lab) -> String {
    let out = host_ok(
        lab,
        BASTION,
        "journalctl -n 1 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'",
    );
    out.trim().to_string()
}

/// `systemctl show` of the service: (Result, ExecMainStatus, the exit timestamp).
fn service_result(lab: &Lab) -> (String, String, String) {
    let out = host_ok(
        lab,
        BASTION,
        "systemctl show -p Result -p ExecMainStatus -p ExecMainExitTimestampMonotonic \
         postfleet-apply@fleet.service",
    );
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_string()
    };
    (
        field("Result"),
        field("ExecMainStatus"),
        field("ExecMainExitTimestampMonotonic"),
    )
}

/// Waits (bounded) until the service has ended a run after `previous_exit`.
fn wait_for_run(lab: &Lab, previous_exit: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (result, status, exited) = service_result(lab);
        let active = host_sh(
            lab,
            BASTION,
            "systemctl is-active -q postfleet-apply@fleet.service",
        )
        .0 == 0;
        if !active && exited != "0" && exited != previous_exit {
            return (result, status);
        }
        assert!(
            Instant::now() < deadline,
            "the timer's run did not end within 5 minutes"
        );
        // Polls systemd's own record of the run; each poll is a fresh `systemctl show`.
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().expect("the run printed JSON lines");
    assert_eq!(last["type"], "summary", "{lines:?}");
    last
}

#[test]
#[ignore = "needs root and the lab"]
fn the_package_on_a_bastion_runs_the_fleet_on_its_timer_and_reports_drift() {
    let _serial = serial();
    let lab = ensure_lab();
    let deb = build_deb().expect(
        "cargo-deb is not installed: scripts/build-deb --install-tool (scripts/test runs it)",
    );
    let _installed = Installed(&lab);

    // Install: dpkg, as from a downloaded .deb (the bastion has no network for apt).
    copy_in(&lab, &deb, "/root/postfleet.deb");
    host_ok(&lab, BASTION, "dpkg -i /root/postfleet.deb");
    host_ok(
        &lab,
        BASTION,
        "getent passwd postfleet && test -x /usr/bin/postfleet",
    );
    // The completions the package installs load in bash.
    let complete = host_ok(
        &lab,
        BASTION,
        "bash -c '. /usr/share/bash-completion/completions/postfleet && complete -p postfleet'",
    );
    assert!(complete.contains("postfleet"), "{complete}");

    // The configuration, as the README's "On a bastion" has it: an Ansible INI inventory.
    let (h1, h3) = (lab.host("h1").unwrap(), lab.host("h3").unwrap());
    let home = "/var/lib/postfleet-controller";
    let inventory = format!(
        "# the fleet, as Ansible has it\n\
         [mx]\n\
         h1 ansible_host={} lab_release=trixie\n\
         h3 ansible_host={} lab_release=bookworm\n\
         \n\
         [mx:vars]\n\
         lab_gateway={}\n\
         ansible_ssh_private_key_file={home}/.ssh/id_fleet\n\
         ansible_python_interpreter=/usr/bin/python3\n",
        h1.address,
        h3.address,
        lab.gateway()
    );
    host_ok(
        &lab,
        BASTION,
        "mkdir -p /etc/postfleet/fleet/templates/newsletter",
    );
    write_in(&lab, "/etc/postfleet/fleet/inventory.ini", &inventory);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_in(
        &lab,
        &repo.join("playbooks/newsletter.yml"),
        "/etc/postfleet/fleet/playbook.yml",
    );
    for entry in std::fs::read_dir(repo.join("templates/newsletter")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        copy_in(
            &lab,
            &entry.path(),
            &format!("/etc/postfleet/fleet/templates/newsletter/{name}"),
        );
    }
    write_in(
        &lab,
        "/etc/postfleet/fleet/env",
        "POSTFLEET_INVENTORY=inventory.ini\nPOSTFLEET_PLAYBOOK=playbook.yml\n",
    );
    host_ok(
        &lab,
        BASTION,
        "chown -R root:postfleet /etc/postfleet/fleet && chmod -R u=rwX,g=rX,o= /etc/postfleet/fleet",
    );
    // The user's key (the lab's, which the hosts accept) and the hosts' keys.
    copy_in(&lab, &lab.key_path(), &format!("{home}/.ssh/id_fleet"));
    copy_in(
        &lab,
        &lab.known_hosts_path(),
        &format!("{home}/.ssh/known_hosts"),
    );
    host_ok(
        &lab,
        BASTION,
        &format!("chown -R postfleet:postfleet {home}/.ssh && chmod 600 {home}/.ssh/*"),
    );

    // The timer, fired once soon (a test drop-in: the shipped timer says hourly).
    host_ok(
        &lab,
        BASTION,
        "mkdir -p /etc/systemd/system/postfleet-apply@.timer.d && \
         printf '[Timer]\\nOnActiveSec=1\\nRandomizedDelaySec=0\\n' \
           > /etc/systemd/system/postfleet-apply@.timer.d/soon.conf && \
         systemctl daemon-reload",
    );
    // What systemd remembers of an earlier run (a test before this one) is not this run.
    host_sh(
        &lab,
        BASTION,
        "systemctl reset-failed postfleet-apply@fleet.service",
    );
    let (_, _, before) = service_result(&lab);
    let mark = cursor(&lab);
    host_ok(
        &lab,
        BASTION,
        "systemctl enable --now postfleet-apply@fleet.timer",
    );
    let listed = host_ok(&lab, BASTION, "systemctl list-timers --all --no-pager");
    assert!(listed.contains("postfleet-apply@fleet.timer"), "{listed}");
    let (result, status) = wait_for_run(&lab, &before);
    let lines = last_run_lines(&lab, &mark);
    let first = summary(&lines);
    assert_eq!(result, "success", "{lines:?}");
    assert!(status == "0" || status == "5", "exit {status}: {lines:?}");
    assert_eq!(first["totals"]["failed"], 0, "{first}");
    assert_eq!(first["totals"]["unreachable"], 0, "{first}");
    assert!(first["hosts"]["h1"].is_object() && first["hosts"]["h3"].is_object());
    let (_, _, first_exit) = service_result(&lab);

    // A second run finds everything in sync: exit 0, nothing changed.
    let mark = cursor(&lab);
    host_ok(
        &lab,
        BASTION,
        "systemctl start postfleet-apply@fleet.service",
    );
    let (result, status) = wait_for_run(&lab, &first_exit);
    let lines = last_run_lines(&lab, &mark);
    assert_eq!(
        (result.as_str(), status.as_str()),
        ("success", "0"),
        "{lines:?}"
    );
    assert_eq!(summary(&lines)["status"], "in sync");
    let (_, _, second_exit) = service_result(&lab);

    // A hand edit on h1: the next run reports it as drift, puts it right, exits 5.
    let relay = lab.exec("h1", "postconf -h relayhost").unwrap();
    let relay = String::from_utf8_lossy(&relay.stdout).trim().to_string();
    host_ok(&lab, "h1", "postconf -e 'relayhost = [192.0.2.9]:25'");
    let mark = cursor(&lab);
    host_ok(
        &lab,
        BASTION,
        "systemctl start postfleet-apply@fleet.service",
    );
    let (result, status) = wait_for_run(&lab, &second_exit);
    let lines = last_run_lines(&lab, &mark);
    assert_eq!(
        (result.as_str(), status.as_str()),
        ("success", "5"),
        "{lines:?}"
    );
    let drift: Vec<&Value> = lines.iter().filter(|l| l["type"] == "drift").collect();
    assert_eq!(drift.len(), 1, "{lines:?}");
    assert_eq!(drift[0]["host"], "h1");
    assert_eq!(drift[0]["setting"], "main.cf `relayhost`");
    assert_eq!(drift[0]["was"], relay);
    assert_eq!(drift[0]["now"], "[192.0.2.9]:25");
    let fixed = summary(&lines);
    assert_eq!(fixed["status"], "drift fixed", "{fixed}");
    assert_eq!(fixed["hosts"]["h1"]["status"], "drift fixed");
    assert_eq!(fixed["hosts"]["h3"]["status"], "in sync");
    let now = host_ok(&lab, "h1", "postconf -h relayhost");
    assert_eq!(now.trim(), relay);

    // A failing run fails the unit: h3's host key changed (a wrong known_hosts line).
    host_ok(
        &lab,
        BASTION,
        &format!(
            "sed -i 's/^{} .*/{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAxL8J9B2lGqyC5d0pF1nQ2p5G3pTl7x9r1Y0a2b3c4d/' {home}/.ssh/known_hosts",
            h3.address.to_string().replace('.', "\\."),
            h3.address
        ),
    );
    // ... while h1, edited by hand again, is still put right: the drift is now measured
    // against what the timer's run left there.
    host_ok(&lab, "h1", "postconf -e 'relayhost = [192.0.2.10]:25'");
    let (_, _, third_exit) = service_result(&lab);
    let mark = cursor(&lab);
    host_sh(
        &lab,
        BASTION,
        "systemctl start postfleet-apply@fleet.service",
    );
    let (result, status) = wait_for_run(&lab, &third_exit);
    assert_eq!(
        (result.as_str(), status.as_str()),
        ("exit-code", "3"),
        "a host that cannot be reached fails the unit"
    );
    let lines = last_run_lines(&lab, &mark);
    let failed = summary(&lines);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["hosts"]["h3"]["status"], "unreachable", "{failed}");
    assert_eq!(failed["hosts"]["h1"]["status"], "drift fixed", "{failed}");
    let drift: Vec<&Value> = lines.iter().filter(|l| l["type"] == "drift").collect();
    assert_eq!(drift.len(), 1, "{lines:?}");
    assert_eq!(drift[0]["was"], relay);
    assert_eq!(drift[0]["by"], "postfleet@h2", "{:?}", drift[0]);
}
