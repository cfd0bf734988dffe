//! Helpers for integration tests: the postfleet binary, the shared test lab (`test`: systemd
//! hosts h1, h2 (Debian 13) and h3 (Debian 12), plain host h4 (Debian 13), brought up once
//! and left up for other test binaries), and running shell commands in its hosts.
//!
//! Each test binary uses only some of these.
#![allow(dead_code, unused_imports)]

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};

pub use postfleet_lab::{Lab, LabHost, Mode, Release, SinkMessage};

pub mod leftovers;

/// The shared lab every integration test may use: `test`, or the lab named by
/// POSTFLEET_TEST_LAB (a run of the suites that must not touch the shared one).
pub fn test_lab() -> String {
    std::env::var("POSTFLEET_TEST_LAB")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "test".into())
}

pub fn postfleet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postfleet"))
}

/// Runs `postfleet lab --lab LAB ARGS...`.
pub fn lab_cmd(lab: &str, args: &[&str]) -> Output {
    Command::new(postfleet_bin())
        .args(["lab", "--lab", lab])
        .args(args)
        .env_remove("POSTFLEET_LAB")
        .output()
        .expect("postfleet runs")
}

/// Runs `postfleet lab --lab LAB ARGS...`, panics with its output unless it succeeds, and
/// returns its stdout.
pub fn lab_ok(lab: &str, args: &[&str]) -> String {
    let out = lab_cmd(lab, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`postfleet lab --lab {lab} {}` failed ({}):\n{stdout}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Holds an exclusive flock until dropped (works across processes and threads).
struct FileLock(File);

fn lock(path: PathBuf) -> FileLock {
    std::fs::create_dir_all(path.parent().expect("lock has a parent dir")).expect("lock dir");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file opens");
    // SAFETY: flock on the descriptor of a File held for the whole call.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::Interrupted,
            "flock {path:?}: {err}"
        );
    }
    FileLock(file)
}

/// A mixed fleet, so that a regression on either supported release fails the suites.
const TEST_SHAPE: [(&str, Mode, Release); 4] = [
    ("h1", Mode::Systemd, Release::Trixie),
    ("h2", Mode::Systemd, Release::Trixie),
    ("h3", Mode::Systemd, Release::Bookworm),
    ("h4", Mode::Plain, Release::Trixie),
];

/// The test lab has TEST_SHAPE's hosts, and its sink runs.
fn has_test_shape(lab: &Lab) -> bool {
    let hosts = lab.hosts();
    lab.sink_up()
        && hosts.len() == TEST_SHAPE.len()
        && hosts
            .iter()
            .zip(TEST_SHAPE)
            .all(|(h, (name, mode, release))| {
                h.name == name && h.mode == mode && h.release == release
            })
}

/// The systemd unit Debian's packaging runs `instance` under on a lab host (the tests'
/// oracle, written out per release): Debian 12's template is `postmulti -i %i` with
/// `postfix.service` an umbrella; Debian 13's maps `/etc/postfix-%I` and runs the default
/// instance under `postfix.service`.
pub fn unit_of(lab: &Lab, host: &str, instance: &str) -> String {
    let release = lab.host(host).expect("a lab host").release;
    match (release, instance) {
        (Release::Bookworm, name) => format!("postfix@{name}.service"),
        (Release::Trixie, "-") => "postfix.service".into(),
        (Release::Trixie, name) => {
            let dir_part = name.strip_prefix("postfix-").expect("a postmulti name");
            format!("postfix@{}.service", dir_part.replace('-', "\\x2d"))
        }
    }
}

fn hosts_down(lab: &Lab) -> Vec<String> {
    lab.hosts()
        .into_iter()
        .filter(|h| !h.up)
        .map(|h| h.name)
        .collect()
}

/// The shared test lab, brought up if it is not up with the right shape (h1..h3 systemd, h4
/// plain). Safe to call from many tests and test binaries at once. A host another test is
/// resetting is waited for; a host that stays down is reset.
pub fn ensure_lab() -> Lab {
    let test_lab = test_lab();
    let test_lab = test_lab.as_str();
    let _guard = lock(postfleet_lab::labs_dir().join(format!(".{test_lab}-lab-ensure.lock")));
    if let Ok(lab) = Lab::open(test_lab) {
        if has_test_shape(&lab) {
            if hosts_down(&lab).is_empty() {
                return lab;
            }
            lab.wait_until_idle().expect("the test lab's lock");
            let lab = Lab::open(test_lab).expect("the test lab is there");
            let down = hosts_down(&lab);
            if !down.is_empty() {
                let mut args = vec!["reset"];
                args.extend(down.iter().map(String::as_str));
                lab_ok(test_lab, &args);
            }
            return Lab::open(test_lab).expect("the test lab is there");
        }
    }
    lab_ok(test_lab, &["down", "--purge"]);
    lab_ok(test_lab, &["up", "--hosts", "2", "--release", "trixie"]);
    lab_ok(test_lab, &["add", "--release", "bookworm"]);
    lab_ok(test_lab, &["add", "--mode", "plain", "--release", "trixie"]);
    let lab = Lab::open(test_lab).expect("the test lab is up");
    assert!(
        has_test_shape(&lab) && hosts_down(&lab).is_empty(),
        "test lab has the wrong shape: {:?}",
        lab.hosts()
    );
    lab
}

/// Boots hosts of a lab afresh (their changes are gone, they get new host keys).
pub fn reset_hosts(lab: &Lab, hosts: &[&str]) {
    let mut args = vec!["reset"];
    args.extend_from_slice(hosts);
    lab_ok(lab.name(), &args);
}

/// Runs `cmd` with /bin/sh as root in `host` (no ssh): (exit code, stdout, stderr).
/// The exit code is -1 if the command was killed by a signal.
pub fn host_sh(lab: &Lab, host: &str, cmd: &str) -> (i32, String, String) {
    let out = lab
        .exec(host, cmd)
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} on {host}: {e:#}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`host_sh`], but panics unless the command succeeds; returns its stdout.
pub fn host_ok(lab: &Lab, host: &str, cmd: &str) -> String {
    let (code, stdout, stderr) = host_sh(lab, host, cmd);
    assert_eq!(code, 0, "{cmd:?} on {host} failed:\n{stdout}\n{stderr}");
    stdout
}

/// `postfleet apply ARGS... --json`: the exit code, the summary line (the last one), and
/// everything printed (for messages).
pub fn apply_summary(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["apply"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = postfleet(&all);
    let summary = json_lines(&out)
        .last()
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), summary, text)
}

/// Runs `postfleet ARGS...` with no inventory from the environment and stdin closed.
pub fn postfleet(args: &[&str]) -> Output {
    Command::new(postfleet_bin())
        .args(args)
        .env_remove("POSTFLEET_INVENTORY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("postfleet runs")
}

/// Writes the lab's inventory (connecting as `user`) into `dir`; returns its path.
pub fn write_inventory(lab: &Lab, user: &str, dir: &std::path::Path) -> PathBuf {
    let path = dir.join(format!("inventory-{user}.yml"));
    std::fs::write(&path, lab.inventory_yaml(user)).expect("inventory written");
    path
}

/// Every stdout line of a `--json` run, parsed.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Scenarios of one test binary that share the lab's hosts run one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The .deb of the binary under test, made by `scripts/build-deb --binary` (the debug build:
/// no release build in the tests); None when cargo-deb is not installed in the target
/// directory's tools (`scripts/build-deb --install-tool`, which scripts/test runs).
pub fn build_deb() -> Option<PathBuf> {
    let bin = postfleet_bin();
    let target = bin
        .parent()
        .and_then(std::path::Path::parent)?
        .to_path_buf();
    if !target.join("tools/bin/cargo-deb").exists() {
        return None;
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("scripts/build-deb"))
        .arg("--binary")
        .arg(&bin)
        .current_dir(repo)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("scripts/build-deb runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/build-deb: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(stdout.trim().lines().last().expect("the .deb's path"));
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "{stdout}"
    );
    Some(deb)
}
