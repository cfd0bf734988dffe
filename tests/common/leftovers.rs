//! Finding everything of a lab independently of the lab's own records (namespaces,
//! interfaces, mounts, cgroups, processes), to prove that `lab down` leaves nothing behind.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// (pid, start time) of a process, None if it is gone. A zombie is not gone: `lab down`
/// returns once every process it owned has disappeared, reaped.
pub fn proc_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    fields[19].parse().ok()
}

fn cgroup_roots(lab: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join(format!("postfleet-{lab}")))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

fn pids_in_cgroup_tree(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            pids_in_cgroup_tree(&entry.path(), out);
        }
    }
}

pub fn lab_netns(lab: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("pf{lab}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Every process of a lab, found independently of the lab's own records: in its network
/// namespaces, in its cgroups, and its sink.
pub fn lab_processes(lab: &str, state_dir: &Path) -> Vec<(i32, u64)> {
    let inodes: Vec<String> = lab_netns(lab)
        .iter()
        .filter_map(|n| std::fs::metadata(Path::new("/run/netns").join(n)).ok())
        .map(|m| format!("net:[{}]", m.ino()))
        .collect();
    let mut pids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                pids.insert(pid);
            }
        }
    }
    for root in cgroup_roots(lab) {
        pids_in_cgroup_tree(&root, &mut pids);
    }
    if let Ok(text) = std::fs::read_to_string(state_dir.join("sink.pid")) {
        pids.extend(
            text.split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok()),
        );
    }
    pids.into_iter()
        .filter_map(|p| proc_start(p).map(|s| (p, s)))
        .collect()
}

/// Nothing of the lab is left: no namespace, interface, mount, cgroup or process.
pub fn assert_nothing_left(lab: &str, state_dir: &Path, processes_before: &[(i32, u64)]) {
    assert!(
        lab_netns(lab).is_empty(),
        "netns left: {:?}",
        lab_netns(lab)
    );
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("pf{lab}-")))
        .collect();
    assert!(links.is_empty(), "interfaces left: {links:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let state = state_dir.to_string_lossy().into_owned();
    let mounts: Vec<&str> = mountinfo.lines().filter(|l| l.contains(&state)).collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(
        cgroup_roots(lab).is_empty(),
        "cgroups left: {:?}",
        cgroup_roots(lab)
    );
    let alive: Vec<i32> = processes_before
        .iter()
        .filter(|(pid, start)| proc_start(*pid) == Some(*start))
        .map(|(pid, _)| *pid)
        .collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
}
