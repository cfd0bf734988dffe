//! The lab against real hosts (root needed). Each test uses its own lab name and subnet and
//! takes its lab down itself; `shared_test_lab_*` brings up the shared lab other tests use.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::leftovers::*;
use common::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Median TCP connect time (one round trip) from the machine to a host's sshd.
fn connect_time_ms(address: IpAddr) -> f64 {
    let mut times: Vec<f64> = (0..11)
        .map(|_| {
            let t = Instant::now();
            TcpStream::connect_timeout(&SocketAddr::new(address, 22), Duration::from_secs(5))
                .expect("connects to sshd");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// Output of `postfleet lab ssh` with stdin and the remote exit code passed through.
fn lab_ssh(lab: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(postfleet_bin())
        .args(["lab", "--lab", lab, "ssh"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_of(&out),
    )
}

fn wait_for_message(lab: &Lab, subject: &str) -> SinkMessage {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = lab
            .sink_messages()
            .into_iter()
            .find(|m| m.header("Subject").as_deref() == Some(subject));
        if let Some(m) = found {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no message {subject:?} in the sink"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn other_lab_bridges(lab: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("pf") && n.ends_with("-br") && *n != format!("pf{lab}-br"))
        .collect()
}

const INOTIFY_SAVED: &str = ".saved-inotify-max-user-instances";

#[test]
#[ignore = "needs root and the lab"]
fn three_systemd_hosts_end_to_end() {
    const LAB: &str = "ltsys";
    lab_ok(LAB, &["down", "--purge"]);

    let started = Instant::now();
    let up = lab_ok(LAB, &["up", "--hosts", "3", "--subnet", "10.78.1.0/24"]);
    eprintln!("up 3 hosts ({:.1}s): {up}", started.elapsed().as_secs_f64());
    for phase in ["base", "prepare", "boot-to-ready", "total"] {
        assert!(up.contains(phase), "no {phase} timing in: {up}");
    }

    let again = lab_cmd(LAB, &["up", "--hosts", "1"]);
    assert!(!again.status.success());
    assert!(
        stderr_of(&again).contains("already up"),
        "{}",
        stderr_of(&again)
    );

    let overlapping = lab_cmd(
        "ltbad",
        &["up", "--hosts", "1", "--subnet", "10.78.1.128/25"],
    );
    assert!(!overlapping.status.success());
    assert!(
        stderr_of(&overlapping).contains("overlaps lab 'ltsys'"),
        "{}",
        stderr_of(&overlapping)
    );

    let lab = Lab::open(LAB).unwrap();
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h1", "h2", "h3"]);
    for (i, h) in hosts.iter().enumerate() {
        assert!(h.up, "{h:?}");
        assert_eq!(h.mode, Mode::Systemd);
        assert_eq!(h.address.to_string(), format!("10.78.1.{}", 11 + i));
    }

    // ssh as root and as deploy (sudo without password), strict host keys from lab up.
    for h in &hosts {
        let (code, out, err) = lab_ssh(LAB, &[&h.name, "--", "id", "-un;", "hostname"], "");
        assert_eq!(
            (code, out.as_str()),
            (0, format!("root\n{}\n", h.name).as_str()),
            "{err}"
        );
        let (code, out, err) = lab_ssh(
            LAB,
            &["-l", "deploy", &h.name, "id -un && sudo -n id -un"],
            "",
        );
        assert_eq!((code, out.as_str()), (0, "deploy\nroot\n"), "{err}");
    }
    let (code, out, _) = lab_ssh(LAB, &["h2", "--", "cat; exit 3"], "through stdin\n");
    assert_eq!((code, out.as_str()), (3, "through stdin\n"));
    let mut system_ssh = lab.ssh_command("h3", "root").unwrap();
    let out = system_ssh
        .arg("systemctl is-system-running")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "running\n",
        "{}",
        stderr_of(&out)
    );

    // Own identity per host; Postfix runs under systemd (Debian 13, the default release, runs
    // the default instance under postfix.service).
    let mut machine_ids = BTreeSet::new();
    for h in &hosts {
        assert_eq!(h.release, Release::Trixie);
        let out = host_ok(
            &lab,
            &h.name,
            "cat /etc/machine-id; postconf -h myhostname; systemctl is-active postfix ssh",
        );
        let lines: Vec<&str> = out.lines().collect();
        machine_ids.insert(lines[0].to_string());
        assert_eq!(lines[1], format!("{}.{LAB}.test", h.name));
        assert_eq!(&lines[2..], ["active", "active"]);
    }
    assert_eq!(machine_ids.len(), 3, "machine-ids are not unique");
    let known_hosts = std::fs::read_to_string(lab.known_hosts_path()).unwrap();
    let host_keys: BTreeSet<&str> = known_hosts
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(host_keys.len(), 6, "{known_hosts}");

    // A postmulti instance on h1 does not exist on h2.
    host_ok(
        &lab,
        "h1",
        "postmulti -e init && postmulti -I postfix-t -e create",
    );
    assert!(host_ok(&lab, "h1", "postmulti -l").contains("postfix-t"));
    assert!(!host_ok(&lab, "h2", "postmulti -l").contains("postfix-t"));
    let (code, _, _) = host_sh(&lab, "h2", "test -e /etc/postfix-t");
    assert_ne!(code, 0, "/etc/postfix-t exists on h2");

    // The sink receives mail that h2's Postfix relays to the gateway.
    let gateway = lab.gateway();
    host_ok(
        &lab,
        "h2",
        &postfleet_shell::Line::new()
            .text("postconf -e")
            .word(format!("relayhost = [{gateway}]:2527"))
            .text(
                "&& systemctl reload postfix && \
                 printf 'Subject: lab-sink-check\\n\\nhello\\n' | sendmail -f from@h2.test to@far.test",
            )
            .build(),
    );
    let m = wait_for_message(&lab, "lab-sink-check");
    assert_eq!(m.port, 2527);
    assert_eq!(m.mail_from, "from@h2.test");
    assert_eq!(m.rcpt_to, ["to@far.test"]);
    assert_eq!(m.helo, format!("h2.{LAB}.test"));
    assert!(m.peer.starts_with("10.78.1.12:"), "{}", m.peer);
    assert!(m.data.contains("hello"), "{}", m.data);
    let second_sink = lab_cmd(LAB, &["sink"]);
    assert!(!second_sink.status.success());
    assert!(
        stderr_of(&second_sink).contains("already runs"),
        "{}",
        stderr_of(&second_sink)
    );

    // Inventory and status.
    let inventory = lab_ok(LAB, &["inventory", "--user", "deploy"]);
    assert!(
        inventory.contains("    ssh_user: deploy\n    become: true\n"),
        "{inventory}"
    );
    assert!(
        inventory.contains("h3: { ssh_host: 10.78.1.13, lab_release: trixie }"),
        "{inventory}"
    );
    assert_eq!(inventory, lab.inventory_yaml("deploy"));
    let status: serde_json::Value =
        serde_json::from_str(&lab_ok(LAB, &["status", "--json"])).unwrap();
    assert_eq!(status["hosts"].as_array().unwrap().len(), 3);
    assert!(status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["up"] == true));

    // Added round-trip time, measured as TCP connect time, and removed again.
    let h3 = IpAddr::V4(hosts[2].address);
    let h1 = IpAddr::V4(hosts[0].address);
    let before = connect_time_ms(h3);
    lab_ok(LAB, &["rtt", "--ms", "60", "h3"]);
    let delayed = connect_time_ms(h3);
    let neighbour = connect_time_ms(h1);
    lab_ok(LAB, &["rtt", "--ms", "0", "h3"]);
    let after = connect_time_ms(h3);
    eprintln!(
        "connect time to h3: {before:.2} ms, with 60 ms added {delayed:.2} ms, \
         removed {after:.2} ms; h1 meanwhile {neighbour:.2} ms"
    );
    assert!(before < 20.0, "{before}");
    assert!((55.0..120.0).contains(&delayed), "{delayed}");
    assert!(neighbour < 20.0, "{neighbour}");
    assert!(after < 20.0, "{after}");

    // Reset: h1 comes back fresh (no postfix-t), with new host keys that ssh accepts.
    let started = Instant::now();
    let reset = lab_ok(LAB, &["reset", "h1"]);
    eprintln!(
        "reset h1 ({:.1}s): {reset}",
        started.elapsed().as_secs_f64()
    );
    assert!(!host_ok(&lab, "h1", "postmulti -l").contains("postfix-t"));
    let (code, out, err) = lab_ssh(LAB, &["h1", "hostname"], "");
    assert_eq!((code, out.as_str()), (0, "h1\n"), "{err}");
    assert_ne!(
        std::fs::read_to_string(lab.known_hosts_path()).unwrap(),
        known_hosts
    );

    // down --purge leaves nothing behind.
    let state_dir = lab.state_dir().to_path_buf();
    let processes = lab_processes(LAB, &state_dir);
    assert!(
        processes.len() > 20,
        "too few processes found: {processes:?}"
    );
    let saved_inotify = std::fs::read_to_string(postfleet_lab::labs_dir().join(INOTIFY_SAVED));
    let started = Instant::now();
    let down = lab_ok(LAB, &["down", "--purge"]);
    eprintln!(
        "down 3 hosts ({:.1}s): {down}",
        started.elapsed().as_secs_f64()
    );
    assert_nothing_left(LAB, &state_dir, &processes);
    assert!(!state_dir.exists());
    if let Ok(original) = saved_inotify {
        if other_lab_bridges(LAB).is_empty() {
            let now = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances").unwrap();
            assert_eq!(now.trim(), original.trim(), "sysctl not restored");
        }
    }
}

/// A plain-mode Debian 12 host, then a systemd Debian 13 host beside it: a mixed lab.
#[test]
#[ignore = "needs root and the lab"]
fn plain_mode_host_and_a_mixed_lab() {
    const LAB: &str = "ltpl";
    lab_ok(LAB, &["down", "--purge"]);
    lab_ok(
        LAB,
        &[
            "up",
            "--hosts",
            "1",
            "--mode",
            "plain",
            "--release",
            "bookworm",
            "--subnet",
            "10.78.2.0/24",
        ],
    );
    let lab = Lab::open(LAB).unwrap();
    let h1 = lab.host("h1").unwrap();
    assert!(h1.up && h1.mode == Mode::Plain, "{h1:?}");
    assert_eq!(h1.release, Release::Bookworm);

    let (code, out, err) = lab_ssh(LAB, &["h1", "--", "ps -o comm= -p 1; hostname"], "");
    assert_eq!((code, out.as_str()), (0, "tini\nh1\n"), "{err}");
    let (code, out, err) = lab_ssh(LAB, &["-l", "deploy", "h1", "sudo -n id -un"], "");
    assert_eq!((code, out.as_str()), (0, "root\n"), "{err}");
    host_ok(&lab, "h1", "postfix status");
    // Postfix answers SMTP on the host's address.
    let mut banner = String::new();
    let stream = TcpStream::connect((h1.address, 25)).unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut banner).unwrap();
    assert!(banner.starts_with("220 h1.ltpl.test ESMTP"), "{banner}");

    // A Debian 13 systemd host (the default release) joins the plain Debian 12 one; the
    // inventory groups them by mode and by release, status shows each host's release.
    lab_ok(LAB, &["add", "--mode", "systemd"]);
    let lab = Lab::open(LAB).unwrap();
    assert_eq!(lab.host("h2").unwrap().release, Release::Trixie);
    let inventory = lab.inventory_yaml("root");
    assert!(
        inventory.contains("    lab_systemd:\n      hosts:\n        h2:\n    lab_plain:\n      hosts:\n        h1:\n"),
        "{inventory}"
    );
    assert!(
        inventory.contains("    lab_bookworm:\n      hosts:\n        h1:\n    lab_trixie:\n      hosts:\n        h2:\n")
            && inventory.contains("h1: { ssh_host: 10.78.2.11, lab_release: bookworm }"),
        "{inventory}"
    );
    let status = lab_ok(LAB, &["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("h1 ") && l.contains("bookworm (12)"))
            && status
                .lines()
                .any(|l| l.starts_with("h2 ") && l.contains("trixie (13)")),
        "{status}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&lab_ok(LAB, &["status", "--json"])).unwrap();
    assert_eq!(status["hosts"][0]["release"], "bookworm");
    assert_eq!(status["hosts"][1]["release"], "trixie");
    // what the hosts themselves say
    for (host, debian, postfix) in [("h1", "12.", "3.7."), ("h2", "13.", "3.10.")] {
        let version = host_ok(
            &lab,
            host,
            "cat /etc/debian_version; postconf -h mail_version",
        );
        let mut lines = version.lines();
        assert!(
            lines.next().unwrap().starts_with(debian),
            "{host}: {version}"
        );
        assert!(
            lines.next().unwrap().starts_with(postfix),
            "{host}: {version}"
        );
    }
    assert_eq!(host_ok(&lab, "h2", "ps -o comm= -p 1"), "systemd\n");

    let state_dir = lab.state_dir().to_path_buf();
    let processes = lab_processes(LAB, &state_dir);
    lab_ok(LAB, &["down", "--purge"]);
    assert_nothing_left(LAB, &state_dir, &processes);
}

#[test]
#[ignore = "needs root and the lab"]
fn leftovers_of_a_killed_run_are_refused_then_cleaned() {
    const LAB: &str = "ltkil";
    lab_ok(LAB, &["down", "--purge"]);
    let mut up = Command::new(postfleet_bin())
        .args([
            "lab",
            "--lab",
            LAB,
            "up",
            "--hosts",
            "2",
            "--subnet",
            "10.78.4.0/24",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !Path::new(&format!("/run/netns/pf{LAB}-h2")).exists() {
        assert!(Instant::now() < deadline, "lab up did not get to h2");
        assert!(up.try_wait().unwrap().is_none(), "lab up ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    up.kill().unwrap();
    up.wait().unwrap();

    let again = lab_cmd(LAB, &["up", "--hosts", "1"]);
    assert!(!again.status.success());
    let err = stderr_of(&again);
    assert!(
        err.contains("already up") || err.contains("leftovers"),
        "{err}"
    );
    assert!(
        err.contains(&format!("postfleet lab --lab {LAB} down")),
        "{err}"
    );

    let state_dir = postfleet_lab::labs_dir().join(LAB);
    let processes = lab_processes(LAB, &state_dir);
    lab_ok(LAB, &["down"]);
    assert_nothing_left(LAB, &state_dir, &processes);
    lab_ok(LAB, &["down", "--purge"]);
    assert!(!state_dir.exists());
}

#[test]
#[ignore = "needs root and the lab"]
fn bad_situations_get_one_clear_message() {
    // Exit codes as for every command: 4 for a request that does not fit (nothing changed),
    // 1 for a machine that cannot run a lab as it is.
    let run_with = |args: &[&str], tweak: &dyn Fn(&mut Command), code: i32| {
        let mut cmd = Command::new(postfleet_bin());
        cmd.args(["lab"]).args(args).env_remove("POSTFLEET_LAB");
        tweak(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        err
    };
    let run = |args: &[&str], tweak: &dyn Fn(&mut Command)| run_with(args, tweak, 4);
    let no_tweak = |_: &mut Command| {};

    let not_root = run_with(
        &["--lab", "ltbad", "up", "--hosts", "1"],
        &|c| {
            // SAFETY: the closure runs in the forked child before exec and only calls setgid and
            // setuid, which are async-signal-safe.
            unsafe {
                c.pre_exec(|| {
                    if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        },
        1,
    );
    assert!(not_root.contains("must run as root"), "{not_root}");

    let no_tools = run_with(
        &["--lab", "ltbad", "up", "--hosts", "1"],
        &|c| {
            c.env("PATH", "/nonexistent");
        },
        1,
    );
    assert!(no_tools.contains("apt-get install iproute2"), "{no_tools}");

    // 127.0.0.0/8 is a local route on every machine.
    let overlap = run(
        &[
            "--lab",
            "ltbad",
            "up",
            "--hosts",
            "1",
            "--subnet",
            "127.0.0.0/24",
        ],
        &no_tweak,
    );
    assert!(
        overlap.contains("overlaps the machine's route"),
        "{overlap}"
    );

    let host_bits = run(
        &[
            "--lab",
            "ltbad",
            "up",
            "--hosts",
            "1",
            "--subnet",
            "10.78.3.5/24",
        ],
        &no_tweak,
    );
    assert!(
        host_bits.contains("did you mean 10.78.3.0/24"),
        "{host_bits}"
    );

    let bad_name = run(&["--lab", "Bad-Name", "status"], &no_tweak);
    assert!(bad_name.contains("invalid lab name"), "{bad_name}");

    let missing = run(&["--lab", "ltnone", "status"], &no_tweak);
    assert!(missing.contains("does not exist"), "{missing}");
    let missing = run(&["--lab", "ltnone", "add"], &no_tweak);
    assert!(missing.contains("does not exist"), "{missing}");
}

#[test]
#[ignore = "needs root and the lab"]
fn shared_test_lab_has_three_systemd_hosts_and_a_plain_one() {
    let lab = ensure_lab();
    let again = ensure_lab();
    assert_eq!(lab.hosts(), again.hosts());
    for (host, init, debian) in [
        ("h1", "systemd", "13."),
        ("h3", "systemd", "12."),
        ("h4", "tini", "13."),
    ] {
        let (code, out, _) = host_sh(&lab, host, "ps -o comm= -p 1; cat /etc/debian_version");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!((code, lines[0]), (0, init), "{host}");
        assert!(lines[1].starts_with(debian), "{host}: {out}");
    }
    assert!(lab.sink_up());
}
