//! Fault injection on real lab hosts: an apply is stopped at each of its host operations
//! (every rename, postmap, postmulti -e, systemctl enable/start/reload) by the remote shell
//! being killed, the connection being cut, or the controller being SIGKILLed. After each
//! fault the instance must serve a whole configuration (old or new: `postfix check` clean,
//! its greeting, a test message delivered through it), and the next run must converge, leave
//! no temp, stage or backup file, and be followed by a run that changes nothing.
//!
//! How a fault lands exactly at one operation: a *gate* on the host. `mv`, `postmap`,
//! `postmulti` and `systemctl` are bind-mounted (in that host's mount namespace only) with
//! a wrapper that counts the calls the apply script makes (the script that holds the host's
//! postfleet lock); the armed call writes its PID to a
//! FIFO and waits on another one, so the test knows the script stands right before that
//! operation, injects the fault, and lets it go on (or not). A first, unarmed run lists the
//! operations of the scenario.
//!
//! By default (the CI run) every operation gets the remote shell killed, and one of the other
//! two kinds, taking turns. `POSTFLEET_FAULTS=all` tries every kind at every operation.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ensure_lab, host_sh, reset_hosts, serial, write_inventory, Lab};
use postfleet_shell::Line;

const INSTANCE: &str = "postfix-fault";
const LISTENER_PORT: u16 = 2700;
const TOOLS: [&str; 4] = ["mv", "postmap", "postmulti", "systemctl"];

fn playbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faults/site.yml")
}

/// A configuration of the fixture: its version word (greeting, tables), the sink port it
/// routes to, and the version of its master.cf listener.
#[derive(Clone, Copy)]
struct Version {
    name: &'static str,
    route_port: u16,
    master: &'static str,
}

const OLD: Version = Version {
    name: "A",
    route_port: 2526,
    master: "A",
};
const NEW: Version = Version {
    name: "B",
    route_port: 2527,
    master: "B",
};
/// B with A's master.cf: nothing that needs a restart changes, so the instance is reloaded.
const NEW_SAME_MASTER: Version = Version { master: "A", ..NEW };

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    /// A host that has never seen postfleet: the instance is created.
    Fresh,
    /// A host converged on the old configuration: every file changes (its listener too),
    /// then a restart.
    Changed,
    /// The same, but the listener stays: main.cf and both tables change, then a reload.
    Reloaded,
}

impl Scenario {
    /// The configuration the faulted apply goes to.
    fn target(self) -> Version {
        match self {
            Scenario::Fresh | Scenario::Changed => NEW,
            Scenario::Reloaded => NEW_SAME_MASTER,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    ShellKilled,
    ConnectionCut,
    ControllerKilled,
}

impl Fault {
    const ALL: [Fault; 3] = [
        Fault::ShellKilled,
        Fault::ConnectionCut,
        Fault::ControllerKilled,
    ];

    fn label(self) -> &'static str {
        match self {
            Fault::ShellKilled => "remote shell killed",
            Fault::ConnectionCut => "connection cut",
            Fault::ControllerKilled => "controller SIGKILLed",
        }
    }
}

/// One operation of the apply script on the host: the `nth` call of `tool`.
#[derive(Clone, Debug)]
struct Point {
    tool: &'static str,
    nth: u32,
    args: String,
}

/// What one fault did, for the table.
struct Trial {
    point: Point,
    fault: Fault,
    /// What the instance served after the fault (before the next run), or why it is broken.
    after_fault: Result<String, String>,
    /// The next run converged (exit 0, serving the new configuration, nothing left behind)
    /// and the one after changed nothing (Ok(true): the next run first recovered what an
    /// interrupted apply left); or what went wrong.
    next_runs: Result<bool, String>,
}

fn sh(lab: &Lab, host: &str, cmd: &str) -> (i32, String, String) {
    host_sh(lab, host, cmd)
}

fn sh_ok(lab: &Lab, host: &str, cmd: &str) -> String {
    let (code, out, err) = sh(lab, host, cmd);
    assert_eq!(code, 0, "{host}: {cmd}\n{out}{err}");
    out
}

/// Installs the gate on `host`: every call the apply script makes to one of [`TOOLS`] goes
/// through a wrapper that counts it and, when armed for that call, stops before it.
const GATE_ON: &str = r#"
g=/run/pf-gate
# A gate an earlier run left: off first (its copies would be wrappers).
for tool in "$@"; do
  real=$(command -v "$tool") || exit 1
  while umount -l "$real" 2>/dev/null; do :; done
done
rm -rf "$g" && mkdir -p "$g" && mkfifo "$g/hit" "$g/go" || exit 1
for tool in "$@"; do
  real=$(command -v "$tool") || exit 1
  cp "$real" "$g/$tool.real" || exit 1
  {
    echo '#!/bin/sh'
    echo "tool=$tool"
    cat <<'EOF'
g=/run/pf-gate
# Only the calls of a script that holds the host's postfleet lock (on fd 9: the apply).
if [ "$(readlink "/proc/$$/fd/9")" = /var/lib/postfleet/lock ]; then
  n=$(( $(cat "$g/count.$tool" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$g/count.$tool"
  echo "$n $*" >> "$g/calls.$tool"
  if [ "$(cat "$g/armed" 2>/dev/null)" = "$tool $n" ]; then
    echo "$$" > "$g/hit"
    read -r _ < "$g/go"
  fi
fi
exec "$g/$tool.real" "$@"
EOF
  } > "$g/$tool.wrap" && chmod 755 "$g/$tool.wrap" || exit 1
  mount --bind "$g/$tool.wrap" "$real" || exit 1
done
"#;

const GATE_OFF: &str = r#"
for tool in "$@"; do
  real=$(command -v "$tool") || continue
  while umount -l "$real" 2>/dev/null; do :; done
done
rm -rf /run/pf-gate
"#;

fn gate_on(lab: &Lab, host: &str) {
    sh_ok(lab, host, &postfleet_shell::with_args(TOOLS, GATE_ON));
}

fn gate_off(lab: &Lab, host: &str) {
    sh_ok(lab, host, &postfleet_shell::with_args(TOOLS, GATE_OFF));
}

/// The operations the apply script made on `host` while the gate was on (mutating ones:
/// reads such as `postmap -q` or `systemctl is-active` are not fault points).
fn operations(lab: &Lab, host: &str) -> Vec<Point> {
    let mut points = Vec::new();
    for tool in TOOLS {
        let cat = Line::new()
            .text("cat")
            .word(format!("/run/pf-gate/calls.{tool}"));
        let (_, calls, _) = sh(lab, host, cat.as_str());
        for line in calls.lines() {
            let (nth, args) = line.split_once(' ').unwrap_or((line, ""));
            let words: Vec<&str> = args.split_whitespace().collect();
            let mutating = match tool {
                "mv" => true,
                "postmap" => !words.contains(&"-q"),
                "postmulti" => words.contains(&"-e") || words.contains(&"-p"),
                _ => words.first().is_some_and(|verb| {
                    [
                        "enable",
                        "disable",
                        "start",
                        "stop",
                        "reload",
                        "restart",
                        "daemon-reload",
                    ]
                    .contains(verb)
                }),
            };
            if mutating {
                points.push(Point {
                    tool,
                    nth: nth.parse().unwrap(),
                    args: args.to_string(),
                });
            }
        }
    }
    points
}

/// `postfleet apply` of the fixture on `host` at `version`, as a child whose JSON lines are
/// read when it ends.
fn spawn_apply(inv: &Path, host: &str, version: Version) -> Child {
    Command::new(common::postfleet_bin())
        .arg("apply")
        .arg("-i")
        .arg(inv)
        .arg(playbook())
        .args(["--limit", host, "--json"])
        .args(["-e", &format!("version={}", version.name)])
        .args(["-e", &format!("route_port={}", version.route_port)])
        .args(["-e", &format!("master_version={}", version.master)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child with a deadline (a hung run is killed, by its PID, and reported).
fn finish(child: Child, limit: Duration) -> Result<std::process::Output, String> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(|e| e.to_string()),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = rx.recv();
            Err(format!("postfleet still running after {limit:?}"))
        }
    }
}

/// Runs an apply to its end: (whether it recovered an interrupted apply first, changed
/// count, the summary line).
fn apply(inv: &Path, host: &str, version: Version) -> Result<(bool, u64, String), String> {
    let out = finish(spawn_apply(inv, host, version), Duration::from_secs(180))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text.lines().last().unwrap_or("").to_string();
    let parsed: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    let changed = parsed["hosts"][host]["changed"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let code = out.status.code().unwrap_or(-1);
    if code != 0 {
        return Err(format!(
            "exit {code}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let recovered = text.lines().any(|l| {
        let line: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
        line["type"] == "step"
            && line["step"] == "recover an interrupted apply"
            && line["status"] == "changed"
    });
    Ok((recovered, changed, summary))
}

/// An SMTP greeting read on the host from 127.0.0.1:`port`.
fn greeting(lab: &Lab, host: &str, port: u16) -> Result<String, String> {
    const GREET: &str = "import socket, sys\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)\n\
        print(s.makefile().readline().strip())\n";
    let line = Line::new()
        .text("python3 -c")
        .word(GREET)
        .word(port.to_string());
    match sh(lab, host, line.as_str()) {
        (0, out, _) if out.starts_with("220 ") => Ok(out.trim().to_string()),
        (_, out, err) => Err(format!("no greeting on port {port}: {out}{err}")),
    }
}

/// Sends a message through the instance's listener and waits until the lab's sink has it;
/// returns the sink port it came in on.
fn deliver(lab: &Lab, host: &str, tag: &str) -> Result<u16, String> {
    const SEND: &str = "import smtplib, sys\n\
        port, rcpt, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n\
        with smtplib.SMTP('127.0.0.1', port, timeout=30) as c:\n\
        \x20   c.sendmail('probe@fault.invalid', [rcpt], f'Subject: {subject}\\r\\n\\r\\nfault probe\\r\\n')\n";
    let rcpt = format!("{tag}@example.net");
    let line = Line::new()
        .text("python3 -c")
        .words([SEND, &LISTENER_PORT.to_string(), &rcpt, tag]);
    let (code, out, err) = sh(lab, host, line.as_str());
    if code != 0 {
        return Err(format!("message refused: {out}{err}"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(m) = lab
            .sink_messages()
            .into_iter()
            .find(|m| m.rcpt_to.contains(&rcpt))
        {
            return Ok(m.port);
        }
        if Instant::now() > deadline {
            let (_, queue, _) = sh(lab, host, &format!("postmulti -i {INSTANCE} -x mailq"));
            return Err(format!(
                "message {tag} not delivered in 60 s; queue:\n{queue}"
            ));
        }
        // Waiting for mail to arrive at the sink, bounded by the deadline.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Which `blocked-V@fault.invalid` sender the instance's `senders` table refuses now: the
/// version of that table the daemons see.
fn senders_version(lab: &Lab, host: &str) -> Result<&'static str, String> {
    const ASK: &str = "import smtplib, sys\n\
        out = []\n\
        for v in ('A', 'B'):\n\
        \x20   with smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30) as c:\n\
        \x20       c.ehlo('probe.invalid')\n\
        \x20       c.mail(f'blocked-{v}@fault.invalid')\n\
        \x20       out.append(f'{v}:{c.rcpt(\"nobody@example.net\")[0]}')\n\
        print(' '.join(out))\n";
    let line = Line::new()
        .text("python3 -c")
        .word(ASK)
        .word(LISTENER_PORT.to_string());
    let (code, out, err) = sh(lab, host, line.as_str());
    match out.split_whitespace().collect::<Vec<_>>()[..] {
        [a, b] if code == 0 => match (a.ends_with(":554"), b.ends_with(":554")) {
            (true, false) => Ok("A"),
            (false, true) => Ok("B"),
            _ => Err(format!("senders table answers {a} {b}")),
        },
        _ => Err(format!("cannot ask the senders table: {out}{err}")),
    }
}

/// What the instance serves now. "A" or "B" when its greeting (main.cf), the route its
/// transport table gives a delivered test message, and the sender its senders table refuses
/// all come from that configuration; "mixed: ..." when they do not; "absent" or "created, not
/// started" for the instance a fresh host does not run yet. Err when it is broken.
fn serving(lab: &Lab, host: &str, scenario: Scenario, tag: &str) -> Result<String, String> {
    // The default instance serves whatever happened to the other one.
    greeting(lab, host, 25).map_err(|e| format!("default instance: {e}"))?;
    // postmulti -l -i NAME exits 0 whether or not it lists NAME: read what it lists.
    let listed = sh(lab, host, &format!("postmulti -l -i {INSTANCE}"))
        .1
        .split_whitespace()
        .next()
        == Some(INSTANCE);
    let check = || {
        let (code, out, err) = sh(
            lab,
            host,
            &format!("postmulti -i {INSTANCE} -x postfix check"),
        );
        if code != 0 || err.contains("fatal") || out.contains("fatal") {
            Err(format!(
                "postfix check: exit {code} {}{}",
                out.trim(),
                err.trim()
            ))
        } else {
            Ok(())
        }
    };
    let (running, _, _) = sh(
        lab,
        host,
        &format!("postmulti -i {INSTANCE} -x postfix status"),
    );
    if running != 0 {
        return match scenario {
            // The old state of a fresh host: no instance, or one not started yet.
            Scenario::Fresh if !listed => Ok("absent".into()),
            Scenario::Fresh => Ok(match check() {
                Ok(()) => "created, not started".into(),
                Err(e) => format!("created, not started ({e})"),
            }),
            Scenario::Changed | Scenario::Reloaded => Err(format!("{INSTANCE} is not running")),
        };
    }
    check()?;
    let hello = greeting(lab, host, LISTENER_PORT)?;
    let banner = if hello.ends_with("fault-A") {
        "A"
    } else if hello.ends_with("fault-B") {
        "B"
    } else {
        return Err(format!("greeting of neither configuration: {hello}"));
    };
    let port = deliver(lab, host, tag)?;
    let route = match port {
        p if p == OLD.route_port => "A",
        p if p == NEW.route_port => "B",
        p => return Err(format!("probe delivered to sink port {p}")),
    };
    let senders = senders_version(lab, host)?;
    if banner == route && route == senders {
        Ok(banner.to_string())
    } else {
        Ok(format!(
            "mixed: main.cf {banner}, transport {route}, senders {senders}"
        ))
    }
}

/// The temp, stage and backup files postfleet makes, wherever they are left.
fn leftovers(lab: &Lab, host: &str) -> String {
    let (_, found, _) = sh(
        lab,
        host,
        "find /etc /var/lib/postfleet \\( -name '*.postfleet-??????' -o -name .postfleet-stage \
         -o -name .postfleet-backup -o -name generation.tmp \\) -print",
    );
    found
}

/// Puts `host` in the scenario's starting state.
fn prepare(lab: &Lab, inv: &Path, host: &str, scenario: Scenario) -> Result<(), String> {
    match scenario {
        Scenario::Fresh => reset_hosts(lab, &[host]),
        Scenario::Changed | Scenario::Reloaded => {
            apply(inv, host, OLD).map_err(|e| format!("{host}: converge on A: {e}"))?;
        }
    }
    Ok(())
}

/// The pid a fault acts on, from the gated call: its process group (the apply's shell and
/// every process it started) and the sshd process that serves the connection.
struct Gated {
    group: String,
    sshd: String,
}

fn wait_at_gate(lab: &Lab, host: &str) -> Result<Gated, String> {
    let (code, pid, err) = sh(lab, host, "timeout 60 cat /run/pf-gate/hit");
    let pid = pid.trim().to_string();
    if code != 0 || pid.is_empty() {
        return Err(format!("the apply never reached the gate: {err}"));
    }
    let field = |what: &str, of: &str| {
        let ps = Line::new()
            .text("ps -o")
            .word(format!("{what}="))
            .text("-p")
            .word(of);
        sh(lab, host, ps.as_str()).1.trim().to_string()
    };
    let group = field("pgid", &pid);
    let session = field("sid", &pid);
    let sshd = field("ppid", &session);
    Ok(Gated { group, sshd })
}

/// One fault at one point: prepare, run, inject, check, run again twice.
fn trial(
    lab: &Lab,
    inv: &Path,
    host: &str,
    scenario: Scenario,
    point: &Point,
    fault: Fault,
) -> Trial {
    if let Err(e) = prepare(lab, inv, host, scenario) {
        return Trial {
            point: point.clone(),
            fault,
            after_fault: Err(e.clone()),
            next_runs: Err(e),
        };
    }
    gate_on(lab, host);
    sh_ok(
        lab,
        host,
        Line::new()
            .text("printf '%s\\n' >/run/pf-gate/armed")
            .word(format!("{} {}", point.tool, point.nth))
            .as_str(),
    );
    let new = scenario.target();
    let mut child = spawn_apply(inv, host, new);
    let run = |cmd: String| match sh(lab, host, &cmd) {
        (0, _, _) => Ok(()),
        (code, out, err) => Err(format!("{cmd}: exit {code}: {out}{err}")),
    };
    let release = || run("echo go > /run/pf-gate/go".into());
    let injected = wait_at_gate(lab, host).and_then(|gated| match fault {
        Fault::ShellKilled => run(Line::new()
            .text("kill -s KILL --")
            .word(format!("-{}", gated.group))
            .build()),
        Fault::ConnectionCut => {
            run(Line::new().text("kill -s KILL").word(&gated.sshd).build()).and_then(|()| release())
        }
        Fault::ControllerKilled => {
            // SIGKILL, to the child we started.
            child.kill().map_err(|e| e.to_string())?;
            release()
        }
    });
    // The controller's view of a fault is not judged here (tests/apply.rs does for a cut
    // connection): what the host is left with is.
    let _ = finish(child, Duration::from_secs(180));
    // Whatever runs on the host still holds its lock: wait until the apply has ended there.
    let ended = sh(lab, host, "timeout 180 flock /var/lib/postfleet/lock true").0 == 0;
    gate_off(lab, host);
    let tag = format!(
        "{host}-{:?}-{}-{}-{:?}",
        scenario, point.tool, point.nth, fault
    )
    .to_lowercase();
    let open_transaction = sh(
        lab,
        host,
        &format!("test -f /etc/{INSTANCE}/.postfleet-backup/list"),
    )
    .0 == 0;
    let injected = injected.and_then(|()| {
        ended
            .then_some(())
            .ok_or_else(|| "the apply still holds the host's lock after 180 s".to_string())
    });
    let after_fault = match injected {
        Err(e) => Err(e),
        // A shell killed half-way through an instance: its supervisor on the host has put the
        // instance's files back before it let go of the lock. Nothing is left for the next
        // run to recover, and the instance serves one whole configuration.
        Ok(()) if open_transaction => Err("a transaction was left open on the host".into()),
        Ok(()) => serving(lab, host, scenario, &format!("{tag}-after")).and_then(|v| {
            if v.starts_with("mixed") {
                Err(v)
            } else {
                Ok(v)
            }
        }),
    };
    let next_runs = (|| {
        let (recovered, _, summary) =
            apply(inv, host, new).map_err(|e| format!("next run: {e}"))?;
        let left = leftovers(lab, host);
        if !left.is_empty() {
            return Err(format!("left after the next run: {left}"));
        }
        match serving(lab, host, scenario, &format!("{tag}-next"))? {
            v if v == new.name => {}
            v => return Err(format!("serving {v} after the next run: {summary}")),
        }
        let (_, changed, summary) =
            apply(inv, host, new).map_err(|e| format!("second run: {e}"))?;
        if changed != 0 {
            return Err(format!("second run changed {changed}: {summary}"));
        }
        Ok(recovered)
    })();
    Trial {
        point: point.clone(),
        fault,
        after_fault,
        next_runs,
    }
}

/// Every fault point of one scenario on one host.
fn scenario_trials(
    lab: &Lab,
    inv: &Path,
    host: &str,
    scenario: Scenario,
    every_kind: bool,
) -> Vec<Trial> {
    // A host nothing else has touched; then the unarmed run: which operations does this
    // scenario's apply make?
    reset_hosts(lab, &[host]);
    prepare(lab, inv, host, scenario).unwrap_or_else(|e| panic!("{e}"));
    gate_on(lab, host);
    let counted = apply(inv, host, scenario.target());
    let points = operations(lab, host);
    gate_off(lab, host);
    counted.unwrap_or_else(|e| panic!("{host}: unarmed {scenario:?} run: {e}"));
    assert!(
        points.iter().any(|p| p.tool == "mv") && points.iter().any(|p| p.tool == "postmap"),
        "{host}: the gate saw no renames or postmaps: {points:?}"
    );
    let mut trials = Vec::new();
    for (i, point) in points.iter().enumerate() {
        // The remote shell killed (nothing of the steps runs after it: the case only the
        // supervisor on the host can put right) at every operation; the other two kinds take
        // turns.
        let kinds: Vec<Fault> = if every_kind {
            Fault::ALL.to_vec()
        } else {
            vec![Fault::ShellKilled, Fault::ALL[1 + i % 2]]
        };
        for fault in kinds {
            let t = trial(lab, inv, host, scenario, point, fault);
            eprintln!(
                "{host} {scenario:?} {} #{} / {}: after the fault {:?}; next runs {:?}",
                point.tool,
                point.nth,
                fault.label(),
                t.after_fault,
                t.next_runs
            );
            trials.push(t);
        }
    }
    trials
}

#[test]
#[ignore = "needs root and the lab"]
fn no_fault_at_any_operation_leaves_a_broken_instance() {
    let _serial = serial();
    let lab = ensure_lab();
    // Three scenarios at once, one host each (two releases), one inventory file each: runs
    // of one inventory exclude each other.
    let scenarios = [
        ("fresh", "h1", Scenario::Fresh),
        ("changed", "h2", Scenario::Changed),
        ("reloaded", "h3", Scenario::Reloaded),
    ];
    let dirs: Vec<_> = scenarios
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let inventories: Vec<PathBuf> = dirs
        .iter()
        .map(|d| write_inventory(&lab, "root", d.path()))
        .collect();
    let every_kind = std::env::var("POSTFLEET_FAULTS").is_ok_and(|v| v == "all");
    let started = Instant::now();
    let results: Vec<(&str, Vec<Trial>)> = std::thread::scope(|s| {
        let runs: Vec<_> = scenarios
            .iter()
            .zip(&inventories)
            .map(|(&(label, host, scenario), inv)| {
                let lab = &lab;
                (
                    label,
                    s.spawn(move || scenario_trials(lab, inv, host, scenario, every_kind)),
                )
            })
            .collect();
        runs.into_iter()
            .map(|(label, run)| (label, run.join().unwrap()))
            .collect()
    });
    let mut table = String::from(
        "scenario  operation                                        fault                  after the fault   next runs\n",
    );
    let mut broken = 0;
    let mut not_converged = 0;
    let mut kinds = std::collections::BTreeMap::new();
    for (scenario, trials) in &results {
        for t in trials.iter() {
            *kinds.entry(t.fault.label()).or_insert(0) += 1;
            let args: String = t.point.args.chars().take(36).collect();
            let op = format!("{} #{} {}", t.point.tool, t.point.nth, args);
            let after = match &t.after_fault {
                Ok(v) => format!("serving {v}"),
                Err(_) => {
                    broken += 1;
                    "BROKEN".into()
                }
            };
            let next = match &t.next_runs {
                Ok(true) => "recovered, converged, 0 changed".to_string(),
                Ok(false) => "converged, 0 changed".to_string(),
                Err(_) => {
                    not_converged += 1;
                    "NOT CONVERGED".into()
                }
            };
            table.push_str(&format!(
                "{scenario:<9} {op:<48} {:<22} {after:<17} {next}\n",
                t.fault.label()
            ));
        }
    }
    let tried: usize = results.iter().map(|(_, t)| t.len()).sum();
    table.push_str(&format!(
        "fault points tried: {tried} ({}); hosts left broken: {broken}; runs that did not converge afterwards: {not_converged}; {:.0} s\n",
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    ));
    eprint!("{table}");
    let problems: Vec<String> = results
        .iter()
        .flat_map(|(_, trials)| trials)
        .filter_map(|t| {
            let mut why = Vec::new();
            if let Err(e) = &t.after_fault {
                why.push(format!("after the fault: {e}"));
            }
            if let Err(e) = &t.next_runs {
                why.push(format!("next runs: {e}"));
            }
            (!why.is_empty()).then(|| {
                format!(
                    "{} #{} ({}) / {}: {}",
                    t.point.tool,
                    t.point.nth,
                    t.point.args,
                    t.fault.label(),
                    why.join("; ")
                )
            })
        })
        .collect();
    reset_hosts(&lab, &["h1", "h2", "h3"]);
    assert!(problems.is_empty(), "{table}\n{}", problems.join("\n"));
    assert!(tried >= 10, "too few fault points: {tried}\n{table}");
}
