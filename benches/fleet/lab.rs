//! The bench's lab: brought up through the postfleet CLI (as a user would), read through the
//! library's `Lab`; host CPU from the lab's cgroup.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use postfleet_lab::{Lab, Release};

use crate::Paths;

pub struct LabHost {
    pub name: String,
    pub address: String,
    /// The host's init.pid record (its first field: the PID of the host's init, outside).
    init_pid: PathBuf,
}

pub struct LabRun {
    pub name: String,
    pub hosts: Vec<LabHost>,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub gateway: String,
    /// The lab as a postfleet inventory.
    pub inventory: PathBuf,
    postfleet: PathBuf,
    /// cgroup v2 `cpu.stat` covering every host of the lab.
    cpu_stat: PathBuf,
    /// With `--bastion`: the ssh_config file every OpenSSH client of the bench reads (the
    /// lab's, with the bench's options), and the bastion's own `cpu.stat`.
    pub bastion: Option<Bastion>,
}

pub struct Bastion {
    pub ssh_config: PathBuf,
    cpu_stat: PathBuf,
}

impl LabRun {
    /// Brings the lab up with `hosts` Debian 12 hosts (or checks that it is), writes its
    /// inventory. Debian 12, because the hand-written floor script and the Ansible playbook
    /// name Debian 12's units, and to keep the figures comparable with earlier runs.
    pub fn prepare(paths: &Paths, name: &str, hosts: u32, bastion: bool) -> Result<LabRun> {
        let postfleet = paths.built_postfleet.clone();
        let current = Lab::open(name).ok();
        let count_up = current.as_ref().map(|lab| {
            let hosts = lab.hosts();
            let shape = hosts.iter().all(|h| h.release == Release::Bookworm)
                && lab.bastions().len() == usize::from(bastion);
            (hosts.iter().filter(|h| h.up).count() as u32, shape)
        });
        let count = hosts.to_string();
        let mut up = vec!["up", "--hosts", &count, "--release", "bookworm"];
        if bastion {
            up.push("--bastion");
        }
        match count_up {
            Some((n, true)) if n == hosts => println!("lab '{name}': {n} hosts already up"),
            Some(_) => {
                lab_cli(&postfleet, name, &["down", "--purge"])?;
                lab_cli(&postfleet, name, &up)?;
            }
            None => lab_cli(&postfleet, name, &up)?,
        }
        let lab = Lab::open(name)?;
        let inventory = paths.work.join(format!("lab-{name}-inventory.yml"));
        std::fs::write(&inventory, lab.inventory_yaml("root"))
            .with_context(|| format!("write {}", inventory.display()))?;
        let cpu_stat = [
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup", // a pure cgroup v2 machine
        ]
        .iter()
        .map(|root| {
            Path::new(root)
                .join(format!("postfleet-{name}"))
                .join("cpu.stat")
        })
        .find(|p| p.exists())
        .with_context(|| format!("no cgroup v2 cpu.stat for lab '{name}'"))?;
        let bastion = if bastion {
            let ssh_config = paths.work.join(format!("lab-{name}-ssh_config"));
            // The lab's description, and the options every OpenSSH client of the bench uses
            // (the jump's ssh reads them from here too: -o options do not reach it).
            let text = format!(
                "{}\nHost *\n    KexAlgorithms curve25519-sha256\n    BatchMode yes\n    LogLevel ERROR\n",
                lab.ssh_config("root")
            );
            std::fs::write(&ssh_config, text)
                .with_context(|| format!("write {}", ssh_config.display()))?;
            let cpu_stat = cpu_stat.with_file_name("bastion").join("cpu.stat");
            if !cpu_stat.exists() {
                bail!("no cpu.stat for the bastion at {}", cpu_stat.display());
            }
            Some(Bastion {
                ssh_config,
                cpu_stat,
            })
        } else {
            None
        };
        let hosts_dir = lab.state_dir().join("hosts");
        Ok(LabRun {
            name: name.to_string(),
            hosts: lab
                .hosts()
                .into_iter()
                .map(|h| LabHost {
                    init_pid: hosts_dir.join(&h.name).join("init.pid"),
                    name: h.name,
                    address: h.address.to_string(),
                })
                .collect(),
            key: lab.key_path(),
            known_hosts: lab.known_hosts_path(),
            gateway: lab.gateway().to_string(),
            inventory,
            postfleet,
            cpu_stat,
            bastion,
        })
    }

    /// CPU time the bastion has used (None without one).
    pub fn bastion_cpu(&self) -> Option<Duration> {
        self.bastion.as_ref().map(|b| read_usage(&b.cpu_stat))
    }

    /// Fresh hosts (new keys, new machine-id, nothing of the last run) with `rtt_ms` added.
    pub fn reset_all(&self, rtt_ms: u32) -> Result<()> {
        let mut args = vec!["reset".to_string()];
        args.extend(self.hosts.iter().map(|h| h.name.clone()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab_cli(&self.postfleet, &self.name, &args)?;
        lab_cli(
            &self.postfleet,
            &self.name,
            &["rtt", "--ms", &rtt_ms.to_string()],
        )
    }

    /// CPU time the lab's hosts have used, all processes of all hosts.
    pub fn host_cpu(&self) -> Duration {
        read_usage(&self.cpu_stat)
    }

    /// Every host's PID counter: the last PID its PID namespace handed out (a reset host
    /// starts a new namespace). Read from inside (`nsenter -p`), all hosts at once.
    pub fn pids_allocated(&self) -> Vec<Option<u64>> {
        let readers: Vec<Option<std::process::Child>> = self
            .hosts
            .iter()
            .map(|h| {
                let text = std::fs::read_to_string(&h.init_pid).ok()?;
                let pid = text.split_whitespace().next()?.to_string();
                Command::new("nsenter")
                    .args(["-t", &pid, "-p", "cat", "/proc/sys/kernel/ns_last_pid"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        readers
            .into_iter()
            .map(|reader| {
                let out = reader?.wait_with_output().ok()?;
                String::from_utf8_lossy(&out.stdout).trim().parse().ok()
            })
            .collect()
    }

    /// Processes (PIDs: threads too) started on each host since `before`, mean per host;
    /// the reading's own `cat` is not counted. None when a host could not be read.
    pub fn pids_per_host(&self, before: &[Option<u64>]) -> Option<f64> {
        let after = self.pids_allocated();
        let mut total = 0u64;
        for (b, a) in before.iter().zip(&after) {
            let (b, a) = ((*b)?, (*a)?);
            // the `cat` of the reading after is one of them; a wrapped counter is no figure
            total += a.checked_sub(b)?.checked_sub(1)?;
        }
        (!before.is_empty()).then(|| total as f64 / before.len() as f64)
    }

    /// Waits (at most 20 s) until the hosts burn less than 5% of one core over 500 ms: boot
    /// jobs and services started by the last run would otherwise count against the next.
    pub fn wait_until_quiet(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let window = Duration::from_millis(500);
        while Instant::now() < deadline {
            let before = self.host_cpu();
            std::thread::sleep(window);
            if self.host_cpu().saturating_sub(before) < window / 20 {
                return;
            }
        }
        eprintln!("note: the lab's hosts did not quiet down within 20 s");
    }

    /// `ssh` to a host with the lab's key and known_hosts, the same options for every tool:
    /// curve25519 key exchange, as postfleet negotiates (OpenSSH 9.2 would pick sntrup761,
    /// which costs ~0.13 s of CPU on each side per connection here).
    pub fn ssh(&self, host: &LabHost) -> Command {
        let mut cmd = Command::new("ssh");
        if let Some(bastion) = &self.bastion {
            // through the bastion, as the lab's ssh_config says
            cmd.arg("-F")
                .arg(&bastion.ssh_config)
                .arg("-T")
                .arg(&host.name);
            return cmd;
        }
        cmd.args(["-F", "/dev/null", "-T", "-i"])
            .arg(&self.key)
            .args(ssh_options(&self.known_hosts))
            .arg(format!("root@{}", host.address));
        cmd
    }

    pub fn down(&self) -> Result<()> {
        lab_cli(&self.postfleet, &self.name, &["down", "--purge"])
    }
}

/// Options shared by the floor's and Ansible's ssh.
pub fn ssh_options(known_hosts: &Path) -> Vec<String> {
    [
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        &format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "KexAlgorithms=curve25519-sha256",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `usage_usec` of a cgroup v2 `cpu.stat`.
fn read_usage(cpu_stat: &Path) -> Duration {
    let text = std::fs::read_to_string(cpu_stat).unwrap_or_default();
    let usec = text
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Duration::from_micros(usec)
}

fn lab_cli(postfleet: &Path, lab: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(postfleet)
        .args(["lab", "--lab", lab])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", postfleet.display()))?;
    if !out.status.success() {
        bail!(
            "postfleet lab --lab {lab} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
