//! What a tool costs on the controller: every process it starts goes into one cpuacct cgroup
//! (children, forks and daemonised ssh masters alike), whose CPU time is read at the end and
//! whose resident memory is summed every 20 ms; direct children also report their peak RSS
//! through wait4.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A cpuacct cgroup for one tool run.
pub struct RunCgroup {
    dir: PathBuf,
}

impl RunCgroup {
    pub fn create(name: &str) -> Result<RunCgroup> {
        let dir = PathBuf::from("/sys/fs/cgroup/cpuacct").join(name);
        if !dir.exists() {
            std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(RunCgroup { dir })
    }

    /// CPU time used by processes while they were in the cgroup.
    pub fn cpu(&self) -> Duration {
        let ns: u64 = std::fs::read_to_string(self.dir.join("cpuacct.usage"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Duration::from_nanos(ns)
    }

    /// Makes `cmd`'s process join this cgroup before it execs.
    pub fn put(&self, cmd: &mut Command) {
        let procs =
            std::ffi::CString::new(self.dir.join("cgroup.procs").to_string_lossy().into_owned())
                .expect("no NUL in a cgroup path");
        // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Removes the cgroup once its processes are gone (kept if some linger).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Sums the resident memory of a cgroup's processes every 20 ms while it lives.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(cgroup: &RunCgroup) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let procs_file = cgroup.dir.join("cgroup.procs");
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            let page = 4096u64;
            while !s.load(Ordering::Relaxed) {
                let total: u64 = std::fs::read_to_string(&procs_file)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|pid| {
                        let statm =
                            std::fs::read_to_string(format!("/proc/{}/statm", pid.trim())).ok()?;
                        statm.split_whitespace().nth(1)?.parse::<u64>().ok()
                    })
                    .sum::<u64>()
                    * page;
                p.fetch_max(total, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Peak of the summed RSS, in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// How one child process ended.
pub struct Ended {
    pub status: Option<i32>,
    /// Killed by us after the timeout.
    pub timed_out: bool,
    /// ru_maxrss, bytes.
    pub max_rss: u64,
}

/// Waits for `child` with wait4 (for its peak RSS); kills its process group at `deadline`.
pub fn wait(child: Child, deadline: Instant) -> Ended {
    let pid = child.id() as libc::pid_t;
    let mut timed_out = false;
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by the kernel.
        // SAFETY: rusage is plain old data; all-zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals; pid is our own child.
        // SAFETY: `status` and `usage` are live locals the call writes to.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            let code = if libc::WIFEXITED(status) {
                Some(libc::WEXITSTATUS(status))
            } else {
                None
            };
            return Ended {
                status: code,
                timed_out,
                max_rss: usage.ru_maxrss as u64 * 1024,
            };
        }
        if r < 0 {
            return Ended {
                status: None,
                timed_out,
                max_rss: 0,
            };
        }
        if !timed_out && Instant::now() >= deadline {
            timed_out = true;
            // SAFETY: signals our own child's process group (it was made its leader).
            // SAFETY: kill takes no pointers; the group is the child's own.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Puts the child in its own process group, so a timeout can stop everything it started.
pub fn own_group(cmd: &mut Command) {
    cmd.process_group(0);
}
