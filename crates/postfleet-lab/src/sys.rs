//! Small system helpers for the lab: running tools, processes, mounts, locks, atomic writes.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The lab creates namespaces, mounts and cgroups: only root can.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        crate::error::environment!(
            "postfleet lab must run as root (it creates network namespaces, mounts and cgroups); \
             run it with sudo"
        );
    }
    Ok(())
}

/// Finds `tool` on PATH, or says which apt package provides it.
pub fn require_tool(tool: &str, apt_package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    crate::error::environment!(
        "`{tool}` not found on PATH: install it with `apt-get install {apt_package}`"
    )
}

fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a live NUL-terminated CString.
    path.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// Runs a command to completion; on failure the error names the command and its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            stderr.trim()
        );
    }
    Ok(out)
}

/// Runs a command and ignores its outcome (for best-effort cleanup of things that may be gone).
pub fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    format!("`{}`", words.join(" "))
}

/// Polls `ready` every `interval` until it returns true or `timeout` passes.
pub fn poll_until(timeout: Duration, interval: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
}

/// A process identified by PID and start time, so a recycled PID is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcRef {
    pub pid: i32,
    pub start: u64,
}

impl ProcRef {
    pub fn of(pid: i32) -> Option<ProcRef> {
        let (state, start) = proc_stat(pid)?;
        (state != 'Z').then_some(ProcRef { pid, start })
    }

    /// Gone for good: not even a zombie waiting to be reaped is left of it.
    pub fn gone(&self) -> bool {
        !matches!(proc_stat(self.pid), Some((_, start)) if start == self.start)
    }

    /// Alive: the PID exists, is not a zombie, and started when we recorded it.
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if state != 'Z' && start == self.start)
    }

    pub fn signal(&self, sig: i32) {
        if self.alive() {
            // SAFETY: kill takes no pointers; a stale pid only makes it fail.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(
            path,
            format!("{} {}\n", self.pid, self.start).as_bytes(),
            0o644,
        )
    }

    pub fn read(path: &Path) -> Option<ProcRef> {
        let text = fs::read_to_string(path).ok()?;
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let start = words.next()?.parse().ok()?;
        Some(ProcRef { pid, start })
    }
}

/// (state letter, start time in clock ticks) from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// All PIDs on the machine (as seen from our PID namespace).
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_path(field)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches a mount (lazily, so a busy one still leaves the tree).
pub fn unmount(path: &Path) -> Result<()> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: `c` is a live NUL-terminated CString.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let err = std::io::Error::last_os_error();
        bail!("cannot unmount {}: {err}", path.display());
    }
    Ok(())
}

pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<()> {
    let src = CString::new(source)?;
    let tgt = cstr(target.as_os_str())?;
    let fs_type = CString::new(fstype)?;
    let opts = CString::new(data)?;
    // SAFETY: every pointer is a live NUL-terminated CString or null, as mount(2) allows.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fs_type.as_ptr(),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                opts.as_ptr().cast()
            },
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!("cannot mount {fstype} on {}: {err}", target.display());
    }
    Ok(())
}

/// Makes every mount in this process's mount namespace private, so nothing we mount leaks out.
pub fn make_mounts_private() -> Result<()> {
    let root = CString::new("/")?;
    // SAFETY: the target is a live CString; the other pointers are null, as mount(2) allows for a propagation change.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "cannot make mounts private: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub fn cstr(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| anyhow!("path with a NUL byte: {s:?}"))
}

/// An exclusive advisory lock, held until dropped.
pub struct FileLock {
    _file: File,
}

pub fn lock_file(path: &Path) -> Result<FileLock> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    loop {
        // SAFETY: flock on a descriptor of a File we hold for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(FileLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("cannot lock {}: {err}", path.display());
        }
    }
}

/// Writes a file so readers see the old or the new content, never a part.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, path).with_context(|| format!("cannot rename into {}", path.display()))
}

/// Removes a directory tree, refusing if anything below it is still mounted (it would
/// otherwise delete into the mounted file system).
pub fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mounted = mounts_under(dir);
    if let Some(m) = mounted.first() {
        bail!(
            "{} is still mounted; not deleting {}",
            m.display(),
            dir.display()
        );
    }
    fs::remove_dir_all(dir).with_context(|| format!("cannot delete {}", dir.display()))
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path(r"/end\"), r"/end\");
    }

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = ProcRef::of(std::process::id() as i32).expect("own stat");
        assert!(me.alive());
        let other = ProcRef {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!other.alive());
    }
}
