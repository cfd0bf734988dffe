//! Stopping hosts and removing everything a lab owns, found both from what the state dir
//! recorded and by name in the kernel (so a crashed run's leftovers are found too).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::state::{labs_dir, HostFiles, LabState, Names};
use super::sys::{self, ProcRef};
use super::{internal, net};

/// systemd in containers needs about 8 inotify instances each; the default 128 per user
/// stops booting at about 15 hosts.
const INOTIFY_INSTANCES: u32 = 8192;
const INOTIFY_SYSCTL: &str = "/proc/sys/fs/inotify/max_user_instances";
/// Time an orderly shutdown may take before the host is killed.
const ORDERLY_STOP: Duration = Duration::from_secs(15);

fn saved_inotify_path() -> PathBuf {
    labs_dir().join(".saved-inotify-max-user-instances")
}

/// Raises fs.inotify.max_user_instances, remembering the first value seen.
pub fn raise_inotify_limit() -> Result<()> {
    let current: u32 = fs::read_to_string(INOTIFY_SYSCTL)?.trim().parse()?;
    if current >= INOTIFY_INSTANCES {
        return Ok(());
    }
    let saved = saved_inotify_path();
    if !saved.exists() {
        fs::create_dir_all(labs_dir())?;
        sys::write_atomic(&saved, format!("{current}\n").as_bytes(), 0o644)?;
    }
    fs::write(INOTIFY_SYSCTL, INOTIFY_INSTANCES.to_string())
        .context("cannot raise fs.inotify.max_user_instances")
}

/// Puts fs.inotify.max_user_instances back, unless another lab still runs.
fn restore_inotify_limit(names: &Names) -> Result<Option<String>> {
    let saved = saved_inotify_path();
    let Ok(value) = fs::read_to_string(&saved) else {
        return Ok(None);
    };
    if !net::other_lab_bridges(names).is_empty() {
        return Ok(None);
    }
    fs::write(INOTIFY_SYSCTL, value.trim())
        .context("cannot restore fs.inotify.max_user_instances")?;
    fs::remove_file(&saved)?;
    Ok(Some(value.trim().to_string()))
}

/// cgroup hierarchies mounted on this machine (v1 controllers, name=systemd, unified).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = dir
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        found.push(PathBuf::from("/sys/fs/cgroup")); // a pure v2 machine
    }
    found
}

/// The lab's cgroup dirs (one per hierarchy), or a host's within them.
fn cgroup_dirs(names: &Names, host: Option<&str>) -> Vec<PathBuf> {
    cgroup_hierarchies()
        .into_iter()
        .map(|h| {
            let dir = h.join(names.cgroup());
            match host {
                Some(host) => dir.join(host),
                None => dir,
            }
        })
        .filter(|d| d.is_dir())
        .collect()
}

/// PIDs in a cgroup dir and all below it.
fn pids_in_cgroup(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pids.extend(pids_in_cgroup(&entry.path()));
            }
        }
    }
    pids
}

/// Removes a cgroup tree, deepest first; cgroups of just-killed processes may stay busy for
/// a moment.
fn remove_cgroup_tree(dir: &Path) -> Result<()> {
    fn remove(dir: &Path) -> std::io::Result<()> {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove(&entry.path())?;
                }
            }
        }
        match fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    let mut last = Ok(());
    let removed = sys::poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        last = remove(dir);
        last.is_ok()
    });
    if !removed {
        if let Err(e) = last {
            bail!("cannot remove cgroup {}: {e}", dir.display());
        }
    }
    Ok(())
}

/// Inode of a network namespace pinned in /run/netns.
fn netns_inode(names: &Names, host: &str) -> Option<u64> {
    fs::metadata(names.netns_path(host)).ok().map(|m| m.ino())
}

/// Processes whose network namespace is one of `inodes`.
fn pids_in_netns(inodes: &[u64]) -> Vec<i32> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("net:[{i}]")).collect();
    sys::all_pids()
        .into_iter()
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
                .unwrap_or(false)
        })
        .collect()
}

fn is_nspawn(p: ProcRef) -> bool {
    fs::read_to_string(format!("/proc/{}/comm", p.pid))
        .map(|c| c.trim() == "systemd-nspawn")
        .unwrap_or(false)
}

/// Everything of a host that runs, found by record, cgroup and network namespace.
fn host_processes(names: &Names, host: &str) -> Vec<ProcRef> {
    let files = HostFiles::new(names, host);
    let mut pids: BTreeSet<i32> = files
        .recorded_procs()
        .into_iter()
        .filter(|p| p.alive())
        .map(|p| p.pid)
        .collect();
    for dir in cgroup_dirs(names, Some(host)) {
        pids.extend(pids_in_cgroup(&dir));
    }
    if let Some(ino) = netns_inode(names, host) {
        pids.extend(pids_in_netns(&[ino]));
    }
    pids.into_iter().filter_map(ProcRef::of).collect()
}

/// Stops hosts: orderly first if asked (nspawn's SIGTERM shuts systemd down; tini forwards
/// SIGTERM to the plain init), then SIGKILL for whatever is left, then removes their network
/// and cgroups. Works from records and names alone, so it also cleans up after a crash.
pub fn stop_hosts(names: &Names, hosts: &[String], orderly: bool) -> Result<()> {
    let files: Vec<HostFiles> = hosts.iter().map(|h| HostFiles::new(names, h)).collect();
    // What ran before: waited for until it is gone, not only dead (below).
    let mut owned: Vec<ProcRef> = files.iter().flat_map(HostFiles::recorded_procs).collect();
    owned.extend(hosts.iter().flat_map(|h| host_processes(names, h)));
    if orderly {
        let mut waiting = Vec::new();
        for f in &files {
            let supervisor = ProcRef::read(&f.supervisor_pid()).filter(|p| p.alive());
            let init = ProcRef::read(&f.init_pid()).filter(|p| p.alive());
            match (supervisor, init) {
                (Some(s), _) if is_nspawn(s) => s.signal(libc::SIGTERM),
                (_, Some(i)) => i.signal(libc::SIGTERM),
                _ => {}
            }
            if let Some(d) = ProcRef::read(&f.delayer_pid()) {
                d.signal(libc::SIGTERM);
            }
            waiting.extend(supervisor);
            waiting.extend(init);
        }
        sys::poll_until(ORDERLY_STOP, Duration::from_millis(50), || {
            waiting.iter().all(|p| !p.alive())
        });
    }
    // The host's PID 1 first: killing it ends its whole PID namespace. Killing only nspawn
    // would orphan the container.
    for f in &files {
        if let Some(init) = ProcRef::read(&f.init_pid()) {
            init.signal(libc::SIGKILL);
        }
    }
    let all_gone = sys::poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let mut left = 0;
        for host in hosts {
            for p in host_processes(names, host) {
                p.signal(libc::SIGKILL);
                left += 1;
            }
        }
        left == 0
    });
    if !all_gone {
        let left: Vec<String> = hosts
            .iter()
            .flat_map(|h| host_processes(names, h))
            .map(|p| p.pid.to_string())
            .collect();
        bail!("processes of the lab survived SIGKILL: {}", left.join(" "));
    }
    // Dead is not gone: the supervisors were started by an earlier `lab` command and are
    // reaped by PID 1, which takes a moment. Return only once they have disappeared, so
    // that a `lab up` (or a check) right after this sees none of them.
    wait_until_gone(&owned);
    for (host, f) in hosts.iter().zip(&files) {
        net::remove_host_network(names, host);
        for dir in cgroup_dirs(names, Some(host)) {
            remove_cgroup_tree(&dir)?;
        }
        for m in sys::mounts_under(&f.dir) {
            sys::unmount(&m)?;
        }
        for record in [f.supervisor_pid(), f.init_pid(), f.delayer_pid()] {
            let _ = fs::remove_file(record);
        }
    }
    Ok(())
}

/// Every host the lab may have, whether recorded in lab.json, on disk, or in the kernel.
fn all_host_names(names: &Names) -> Vec<String> {
    let mut hosts = BTreeSet::new();
    if let Ok(Some(state)) = LabState::load(names) {
        hosts.extend(state.hosts.into_iter().map(|h| h.name));
    }
    if let Ok(entries) = fs::read_dir(names.state_dir.join("hosts")) {
        hosts.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok()),
        );
    }
    let prefix = names.prefix();
    for n in net::netns_with_prefix(&prefix) {
        if let Some(host) = n.strip_prefix(&prefix) {
            if !Names::is_internal_netns(host) {
                hosts.insert(host.to_string());
            }
        }
    }
    // Veth ends on the bridge are named by link tag (`b1` for `bastion`).
    for n in net::links_with_prefix(&prefix) {
        if let Some(tag) = n.strip_prefix(&prefix) {
            if tag != "br" {
                hosts.insert(Names::host_of_tag(tag));
            }
        }
    }
    for dir in cgroup_dirs(names, None) {
        if let Ok(entries) = fs::read_dir(dir) {
            hosts.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
    }
    hosts.into_iter().collect()
}

pub fn stop_sink(names: &Names) {
    let Some(sink) = ProcRef::read(&names.sink_pid_path()) else {
        return;
    };
    sink.signal(libc::SIGTERM);
    if !sys::poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
        !sink.alive()
    }) {
        sink.signal(libc::SIGKILL);
        sys::poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
            !sink.alive()
        });
    }
    wait_until_gone(&[sink]);
    let _ = fs::remove_file(names.sink_pid_path());
}

/// Waits (at most 10 s) until none of `procs` is left, zombies included.
fn wait_until_gone(procs: &[ProcRef]) {
    sys::poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        procs.iter().all(ProcRef::gone)
    });
}

/// What `down` did, for its one-line report.
pub struct DownReport {
    pub hosts: usize,
    pub restored_inotify: Option<String>,
}

/// Stops every host and the sink, and removes every namespace, interface, cgroup and mount
/// of the lab. Verifies that nothing is left.
pub fn down(names: &Names) -> Result<DownReport> {
    let hosts = all_host_names(names);
    stop_hosts(names, &hosts, true)?;
    stop_sink(names);
    // Anything else left in the lab's cgroups (e.g. a process started in a host's cgroup
    // whose host dir is gone).
    for dir in cgroup_dirs(names, None) {
        for pid in pids_in_cgroup(&dir) {
            if let Some(p) = ProcRef::of(pid) {
                p.signal(libc::SIGKILL);
            }
        }
    }
    let prefix = names.prefix();
    for link in net::links_with_prefix(&prefix) {
        sys::run_quiet(std::process::Command::new("ip").args(["link", "del", &link]));
    }
    for ns in net::netns_with_prefix(&prefix) {
        sys::run_quiet(std::process::Command::new("ip").args(["netns", "del", &ns]));
    }
    internal::remove_routes(&recorded_internal(names));
    for dir in cgroup_dirs(names, None) {
        remove_cgroup_tree(&dir)?;
    }
    for m in sys::mounts_under(&names.state_dir) {
        sys::unmount(&m)?;
    }
    let restored_inotify = restore_inotify_limit(names)?;
    let left = leftovers(names);
    if !left.is_empty() {
        bail!(
            "lab '{}' could not be fully removed: {}",
            names.lab,
            left.join(", ")
        );
    }
    Ok(DownReport {
        hosts: hosts.len(),
        restored_inotify,
    })
}

/// The internal networks' subnets lab.json records (none if it is gone or damaged).
fn recorded_internal(names: &Names) -> Vec<crate::net::Subnet> {
    LabState::load(names)
        .ok()
        .flatten()
        .map(|s| s.internal)
        .unwrap_or_default()
}

/// What of the lab runs now: host names and "sink".
pub fn live_processes(names: &Names) -> Vec<String> {
    let mut live: Vec<String> = all_host_names(names)
        .into_iter()
        .filter(|host| {
            HostFiles::new(names, host)
                .recorded_procs()
                .iter()
                .any(|p| p.alive())
        })
        .collect();
    if ProcRef::read(&names.sink_pid_path()).is_some_and(|p| p.alive()) {
        live.push("sink".to_string());
    }
    live
}

/// Kernel objects and processes of the lab that exist now, described for messages.
pub fn leftovers(names: &Names) -> Vec<String> {
    let mut left: Vec<String> = live_processes(names)
        .into_iter()
        .map(|what| format!("running {what}"))
        .collect();
    let prefix = names.prefix();
    left.extend(
        net::netns_with_prefix(&prefix)
            .into_iter()
            .map(|n| format!("netns {n}")),
    );
    left.extend(
        net::links_with_prefix(&prefix)
            .into_iter()
            .map(|n| format!("interface {n}")),
    );
    left.extend(
        internal::routes_left(&recorded_internal(names))
            .into_iter()
            .map(|r| format!("route unreachable {r}")),
    );
    left.extend(
        cgroup_dirs(names, None)
            .into_iter()
            .map(|d| format!("cgroup {}", d.display())),
    );
    left.extend(
        sys::mounts_under(&names.state_dir)
            .into_iter()
            .map(|m| format!("mount {}", m.display())),
    );
    left
}
