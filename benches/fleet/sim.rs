//! Controller scale. A separate process (this binary, `sim-serve`) runs postfleet's SSH
//! simulator: N hosts on loopback, each answering the facts probe with the output captured
//! from a converged lab host (benches/sim/converged-probe.json), its host name swapped in.
//! The postfleet binary then converges them as a user runs it (`apply --json`: inventory,
//! render, plan, fleet runner, report and recap all included): a no-change run, one round
//! trip per host. Its wall time, CPU (its own cgroup) and peak RSS (wait4) are measured at
//! 1 host and at each fleet size (`--sim-hosts 1000,10000`): per host is the figure over the
//! hosts, marginal is the difference from the 1-host run over the extra hosts, and the
//! largest size over the smallest says whether the cost per host stays flat.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use postfleet_sim::{SimHost, SimReply, Simulator};
use serde_json::{json, Value};

use crate::lab::LabRun;
use crate::measure;
use crate::report::{mb, round, secs, Phases};
use crate::Paths;

const FIXTURE: &str = "benches/sim/converged-probe.json";

/// The probe's output on a converged lab host, and what it depends on.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProbeFixture {
    /// The inventory name of the host it was captured on (swapped for each simulated host).
    host: String,
    lab: String,
    /// `lab_gateway` when it was captured: the simulated run renders with the same.
    gateway: String,
    /// When (UTC).
    captured: String,
    output: String,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    hosts: usize,
    /// The controller's private key (its public half is authorized on every host).
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    probe: PathBuf,
    /// Where to write known_hosts and ports.
    #[arg(long)]
    dir: PathBuf,
}

/// One postfleet run on the simulated fleet.
#[derive(Debug, Clone)]
pub struct SimPoint {
    pub hosts: usize,
    /// From start to exit.
    pub wall: Duration,
    /// The postfleet process's CPU (its own cgroup: user + system).
    pub cpu: Duration,
    /// Its peak RSS (wait4's ru_maxrss), bytes.
    pub peak_rss: u64,
    pub converged: usize,
    pub errors: Vec<String>,
    pub phases: Phases,
}

impl SimPoint {
    fn to_json(&self) -> Value {
        json!({
            "hosts": self.hosts,
            "wall_s": secs(self.wall),
            "controller_cpu_s": secs(self.cpu),
            "controller_peak_rss_mb": mb(self.peak_rss),
            "converged": self.converged,
            "errors": self.errors,
            "postfleet_phases_mean_s": self.phases,
        })
    }
}

/// Per-host figures of one fleet size, against the 1-host run of the same build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerHost {
    /// Controller CPU / hosts, ms.
    pub cpu_ms: f64,
    /// (CPU at N - CPU at 1) / (N - 1), ms.
    pub marginal_cpu_ms: f64,
    /// Peak RSS / hosts, KB.
    pub rss_kb: f64,
    /// (peak RSS at N - peak RSS at 1) / (N - 1), KB.
    pub marginal_rss_kb: f64,
    /// Wall time / hosts, ms.
    pub wall_ms: f64,
}

impl PerHost {
    fn of(point: &SimPoint, one: &SimPoint) -> PerHost {
        let n = point.hosts.max(1) as f64;
        let extra = (point.hosts.max(2) - 1) as f64;
        PerHost {
            cpu_ms: point.cpu.as_secs_f64() * 1000.0 / n,
            marginal_cpu_ms: (point.cpu.as_secs_f64() - one.cpu.as_secs_f64()) * 1000.0 / extra,
            rss_kb: point.peak_rss as f64 / 1024.0 / n,
            marginal_rss_kb: (point.peak_rss as f64 - one.peak_rss as f64) / 1024.0 / extra,
            wall_ms: point.wall.as_secs_f64() * 1000.0 / n,
        }
    }

    fn ratio(&self, base: &PerHost) -> PerHost {
        let r = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        PerHost {
            cpu_ms: r(self.cpu_ms, base.cpu_ms),
            marginal_cpu_ms: r(self.marginal_cpu_ms, base.marginal_cpu_ms),
            rss_kb: r(self.rss_kb, base.rss_kb),
            marginal_rss_kb: r(self.marginal_rss_kb, base.marginal_rss_kb),
            wall_ms: r(self.wall_ms, base.wall_ms),
        }
    }

    fn to_json(self) -> Value {
        json!({
            "cpu_ms": round(self.cpu_ms),
            "marginal_cpu_ms": round(self.marginal_cpu_ms),
            "rss_kb": round(self.rss_kb),
            "marginal_rss_kb": round(self.marginal_rss_kb),
            "wall_ms": round(self.wall_ms),
        })
    }
}

/// One postfleet binary's runs: at 1 host, then at each fleet size (medians over the
/// repetitions, each figure on its own).
#[derive(Debug, Clone)]
pub struct SimBuild {
    pub label: String,
    pub binary: PathBuf,
    pub one: SimPoint,
    pub sizes: Vec<SimPoint>,
}

impl SimBuild {
    fn per_host(&self) -> Vec<PerHost> {
        self.sizes
            .iter()
            .map(|p| PerHost::of(p, &self.one))
            .collect()
    }

    /// Largest fleet over smallest, per host.
    fn ratio(&self) -> Option<PerHost> {
        let per_host = self.per_host();
        match (per_host.first(), per_host.last()) {
            (Some(small), Some(large)) if per_host.len() > 1 => Some(large.ratio(small)),
            _ => None,
        }
    }
}

/// What the simulated runs measured.
#[derive(Debug, Clone)]
pub struct SimResult {
    pub forks: usize,
    pub reps: usize,
    pub builds: Vec<SimBuild>,
}

fn kilo(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

impl SimResult {
    pub fn render(&self) -> String {
        let mut s = format!(
            "controller scale: simulated hosts (postfleet's SSH simulator, a separate process \
             on the same cores), no-change run of the postfleet binary, forks {}, median of {} \
             run(s)\n\
             per host = figure / hosts; marginal = (figure at N - figure at 1 host) / (N - 1)\n\n",
            self.forks, self.reps
        );
        s.push_str(&format!(
            "{:<8} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
            "build",
            "hosts",
            "wall",
            "CPU",
            "CPU/host",
            "marg CPU",
            "peak RSS",
            "RSS/host",
            "marg RSS",
            "wall/host",
            "in sync (1 round trip)"
        ));
        for build in &self.builds {
            s.push_str(&format!(
                "{:<8} {:>6} {:>6.2} s {:>6.2} s {:>9} {:>9} {:>6.1} MB {:>9} {:>9} {:>9}  {}/{}\n",
                build.label,
                1,
                build.one.wall.as_secs_f64(),
                build.one.cpu.as_secs_f64(),
                "",
                "",
                mb(build.one.peak_rss),
                "",
                "",
                "",
                build.one.converged,
                1
            ));
            for (point, per) in build.sizes.iter().zip(build.per_host()) {
                s.push_str(&format!(
                    "{:<8} {:>6} {:>6.2} s {:>6.2} s {:>6.2} ms {:>6.2} ms {:>6.1} MB {:>6.1} KB \
                     {:>6.1} KB {:>6.2} ms  {}/{}\n",
                    build.label,
                    point.hosts,
                    point.wall.as_secs_f64(),
                    point.cpu.as_secs_f64(),
                    per.cpu_ms,
                    per.marginal_cpu_ms,
                    mb(point.peak_rss),
                    per.rss_kb,
                    per.marginal_rss_kb,
                    per.wall_ms,
                    point.converged,
                    point.hosts
                ));
            }
            if let Some(r) = build.ratio() {
                let label = format!(
                    "{}/{}",
                    kilo(build.sizes.last().map_or(0, |p| p.hosts)),
                    kilo(build.sizes.first().map_or(0, |p| p.hosts))
                );
                s.push_str(&format!(
                    "{:<8} {:>6} {:>8} {:>8} {:>8.2}x {:>8.2}x {:>9} {:>8.2}x {:>8.2}x {:>8.2}x\n",
                    build.label,
                    label,
                    "",
                    "",
                    r.cpu_ms,
                    r.marginal_cpu_ms,
                    "",
                    r.rss_kb,
                    r.marginal_rss_kb,
                    r.wall_ms
                ));
            }
            for point in std::iter::once(&build.one).chain(&build.sizes) {
                for e in point.errors.iter().take(3) {
                    s.push_str(&format!(
                        "  {} at {} hosts: {e}\n",
                        build.label, point.hosts
                    ));
                }
            }
        }
        if let Some(build) = self.builds.first() {
            s.push_str(&format!("\nmean per host ({}):\n", build.label));
            for p in &build.sizes {
                s.push_str(&format!(
                    "  {} hosts: connect {:.3} s, facts {:.3} s, plan {:.4} s\n",
                    p.hosts, p.phases.connect, p.phases.facts, p.phases.plan
                ));
            }
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let builds: Vec<Value> = self
            .builds
            .iter()
            .map(|b| {
                let sizes: Vec<Value> = b
                    .sizes
                    .iter()
                    .zip(b.per_host())
                    .map(|(p, per)| {
                        let mut v = p.to_json();
                        v["per_host"] = per.to_json();
                        v
                    })
                    .collect();
                json!({
                    "label": b.label,
                    "binary": b.binary.display().to_string(),
                    "one_host": b.one.to_json(),
                    "sizes": sizes,
                    "largest_over_smallest_per_host": b.ratio().map(PerHost::to_json),
                })
            })
            .collect();
        json!({ "forks": self.forks, "reps": self.reps, "builds": builds })
    }
}

/// The simulated runs: starts the simulator with the largest fleet, then measures each
/// postfleet binary (`builds`: label and path) at 1 host and at every size in `sizes`,
/// the binaries taking turns at each size (the order alternating from one repetition to the
/// next), so that a drift of the machine spreads over all of them.
pub fn run(
    paths: &Paths,
    builds: &[(String, PathBuf)],
    sizes: &[usize],
    forks: usize,
    reps: usize,
) -> Result<SimResult> {
    let fixture: ProbeFixture = serde_json::from_str(
        &std::fs::read_to_string(paths.in_repo(FIXTURE))
            .with_context(|| format!("read {FIXTURE}"))?,
    )
    .with_context(|| format!("parse {FIXTURE}"))?;
    let hosts = sizes.iter().copied().max().unwrap_or(1);
    check_limits(hosts, forks)?;
    let dir = paths.work.join("sim");
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("client_ed25519");
    write_client_key(&key)?;
    let me = std::env::current_exe()?;
    println!("controller scale: starting {hosts} simulated hosts");
    let mut server = Command::new(&me)
        .arg("sim-serve")
        .args(["--hosts", &hosts.to_string(), "--key"])
        .arg(&key)
        .arg("--probe")
        .arg(paths.in_repo(FIXTURE))
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start the simulator")?;
    let mut ready = String::new();
    BufReader::new(server.stdout.take().context("simulator stdout")?).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        let _ = server.kill();
        bail!("the simulator did not start: {ready:?}");
    }
    let result = measure_builds(paths, &dir, &fixture, builds, sizes, forks, reps);
    // Closing its stdin stops the simulator.
    drop(server.stdin.take());
    let _ = server.wait();
    Ok(SimResult {
        forks,
        reps,
        builds: result?,
    })
}

fn measure_builds(
    paths: &Paths,
    dir: &Path,
    fixture: &ProbeFixture,
    builds: &[(String, PathBuf)],
    sizes: &[usize],
    forks: usize,
    reps: usize,
) -> Result<Vec<SimBuild>> {
    let ports_file = std::fs::read_to_string(dir.join("ports"))?;
    let ports: Vec<u16> = ports_file
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let mut all_sizes = vec![1];
    all_sizes.extend(sizes.iter().copied().filter(|&n| n > 1));
    all_sizes.dedup();
    // runs[build][size][rep]
    let mut runs: Vec<Vec<Vec<SimPoint>>> = vec![vec![Vec::new(); all_sizes.len()]; builds.len()];
    // Each size gets a known_hosts file of its own hosts, as a user's fleet of that size has,
    // written before any run (postfleet keeps a parsed known_hosts only once it has settled).
    let known_hosts = std::fs::read_to_string(dir.join("known_hosts"))?;
    let known_lines: Vec<&str> = known_hosts.lines().collect();
    let mut inventories = Vec::new();
    for &n in &all_sizes {
        let known = dir.join(format!("known_hosts-{n}"));
        std::fs::write(&known, known_lines[..n].join("\n") + "\n")?;
        inventories.push(write_inventory(dir, &ports[..n], &known, &fixture.gateway)?);
    }
    std::thread::sleep(Duration::from_secs(2));
    for rep in 0..reps {
        for (s, &n) in all_sizes.iter().enumerate() {
            let inventory = &inventories[s];
            let mut order: Vec<usize> = (0..builds.len()).collect();
            order.rotate_left((rep + s) % builds.len().max(1));
            for b in order {
                let point = measure_one(paths, &builds[b].1, inventory, n, forks)?;
                println!(
                    "  {} at {} hosts: wall {:.2} s, CPU {:.2} s, peak RSS {:.1} MB, {}/{} in sync",
                    builds[b].0,
                    n,
                    point.wall.as_secs_f64(),
                    point.cpu.as_secs_f64(),
                    mb(point.peak_rss),
                    point.converged,
                    n
                );
                runs[b][s].push(point);
            }
        }
    }
    Ok(builds
        .iter()
        .zip(runs)
        .map(|((label, binary), by_size)| {
            let mut points: Vec<SimPoint> = by_size.into_iter().map(median_point).collect();
            let one = points.remove(0);
            SimBuild {
                label: label.clone(),
                binary: binary.clone(),
                one,
                sizes: points,
            }
        })
        .collect())
}

/// Each figure's median over the repetitions (the errors and phases of the first run).
fn median_point(mut runs: Vec<SimPoint>) -> SimPoint {
    fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
        v.sort();
        v[v.len() / 2]
    }
    let wall = median(runs.iter().map(|r| r.wall).collect());
    let cpu = median(runs.iter().map(|r| r.cpu).collect());
    let peak_rss = median(runs.iter().map(|r| r.peak_rss).collect());
    let converged = runs.iter().map(|r| r.converged).min().unwrap_or(0);
    let mut point = runs.swap_remove(0);
    point.wall = wall;
    point.cpu = cpu;
    point.peak_rss = peak_rss;
    point.converged = converged;
    point
}

/// One no-change run of `postfleet` on the first `hosts` simulated hosts.
fn measure_one(
    paths: &Paths,
    postfleet: &Path,
    inventory: &Path,
    hosts: usize,
    forks: usize,
) -> Result<SimPoint> {
    // The child's ru_maxrss counts this process's resident pages from before its exec (the
    // fork): give freed heap (the last run's JSON) back first, so that the floor stays below
    // postfleet's own peak even at 1 host.
    // SAFETY: malloc_trim takes no pointers; glibc's allocator is this process's.
    unsafe { libc::malloc_trim(0) };
    let cgroup = measure::RunCgroup::create("pfbench-sim")?;
    let cpu_before = cgroup.cpu();
    let mut cmd = Command::new(postfleet);
    cmd.arg("apply")
        .arg("-i")
        .arg(inventory)
        .arg(paths.in_repo("playbooks/newsletter.yml"))
        .args(["--json", "--forks", &forks.to_string()])
        .args(["--connect-timeout", "60", "--command-timeout", "120"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    measure::own_group(&mut cmd);
    cgroup.put(&mut cmd);
    let started = Instant::now();
    let mut child = cmd.spawn().context("start postfleet")?;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .context("postfleet stdout")?
        .read_to_string(&mut stdout)?;
    let ended = measure::wait(child, Instant::now() + Duration::from_secs(900));
    let wall = started.elapsed();
    let cpu = cgroup.cpu().saturating_sub(cpu_before);
    cgroup.remove();
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("no JSON summary from postfleet ({:?})", ended.status))?;
    let (converged, errors, phases) = read_summary(&summary);
    Ok(SimPoint {
        hosts,
        wall,
        cpu,
        peak_rss: ended.max_rss,
        converged,
        errors,
        phases,
    })
}

/// The simulator holds one listening socket per host and the controller one connection per
/// host it works on: checks that file descriptors and local ports suffice, raising this
/// process's soft limit on open files to its hard limit (the simulator inherits it).
fn check_limits(hosts: usize, forks: usize) -> Result<()> {
    let needed = hosts + 4 * forks + 256;
    let (soft, hard) = raise_nofile()?;
    if (soft as usize) < needed {
        bail!(
            "{hosts} simulated hosts need about {needed} open files, the limit is {soft} (hard \
             {hard}): raise it (ulimit -Hn) or simulate fewer hosts"
        );
    }
    if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
        let bounds: Vec<usize> = range
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [low, high] = bounds[..] {
            // Listeners take ephemeral ports; the controller's connections take others
            // (TIME_WAIT ones are reused for other destinations).
            let free = (high + 1).saturating_sub(low);
            if free < hosts + 4 * forks + 1024 {
                bail!(
                    "{hosts} simulated hosts need about {} local ports, \
                     net.ipv4.ip_local_port_range gives {free}",
                    hosts + 4 * forks + 1024
                );
            }
        }
    }
    Ok(())
}

/// Sets the soft RLIMIT_NOFILE to the hard one; returns both.
fn raise_nofile() -> Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live local the call writes to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a pointer to a live local, read by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// A fixed ed25519 key for the controller (a benchmark needs no secret).
fn write_client_key(path: &Path) -> Result<()> {
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&[7u8; 32]));
    let _ = std::fs::remove_file(path);
    key.write_openssh_file(path, russh::keys::ssh_key::LineEnding::LF)
        .with_context(|| format!("write {}", path.display()))
}

/// `sim-serve`: N hosts answering the probe; stops when stdin closes (or after 30 min).
pub fn serve(args: &ServeArgs) -> Result<()> {
    raise_nofile()?;
    let fixture: ProbeFixture = serde_json::from_str(&std::fs::read_to_string(&args.probe)?)?;
    let client = russh::keys::load_secret_key(&args.key, None)?
        .public_key()
        .clone();
    let hosts: Vec<SimHost> = (1..=args.hosts)
        .map(|i| {
            let name = format!("h{i}");
            let answer = Arc::new(adapt_probe_output(&fixture.output, &fixture.host, &name));
            SimHost::new(name, client.clone(), move |cmd| {
                let is_probe = cmd.command == "/bin/sh -s"
                    && String::from_utf8_lossy(&cmd.stdin).contains("postfleet facts probe");
                if is_probe {
                    SimReply::new(answer.as_bytes().to_vec(), "", 0)
                } else {
                    SimReply::new("", "simulator: only the facts probe is answered\n", 1)
                }
            })
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sim = Simulator::start(hosts).await?;
        std::fs::write(args.dir.join("known_hosts"), sim.known_hosts())?;
        let ports: Vec<String> = (0..sim.len()).map(|i| sim.port(i).to_string()).collect();
        std::fs::write(args.dir.join("ports"), ports.join("\n") + "\n")?;
        println!("ready");
        std::io::stdout().flush()?;
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        });
        let _ = tokio::time::timeout(Duration::from_secs(1800), stdin_closed).await;
        sim.shutdown();
        Ok(())
    })
}

/// The captured output with the capture host's name replaced by `host` inside the config
/// files it carries (base64): `myhostname = newsletter.h1.invalid` and the like, and in the
/// values the last apply recorded.
fn adapt_probe_output(output: &str, from: &str, host: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = String::with_capacity(output.len() + 64);
    for line in output.lines() {
        let mut fields: Vec<String> = line.split('\t').map(String::from).collect();
        let encoded = match fields.first().map(String::as_str) {
            Some("maincf" | "mastercf") => Some(2),
            Some("file") if fields.len() > 3 => Some(3),
            _ => None,
        };
        if let Some(i) = encoded {
            if let Some(text) = b64
                .decode(fields[i].trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                fields[i] = b64.encode(replace_word(&text, from, host));
            }
        }
        // What the last apply recorded (drift.rs): a value as `v:BASE64`.
        if fields.first().map(String::as_str) == Some("applied") {
            for field in fields.iter_mut() {
                let Some(value) = field.strip_prefix("v:") else {
                    continue;
                };
                if let Some(text) = b64
                    .decode(value)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    *field = format!("v:{}", b64.encode(replace_word(&text, from, host)));
                }
            }
        }
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

/// Replaces `from` where it stands as a word (not inside `h10` or `sha1`).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = if at > 0 {
            rest[..at].chars().last()
        } else {
            out.chars().last()
        };
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(word) || after.is_some_and(word) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// The simulated fleet as an inventory: every host on 127.0.0.1 at its port, `known_hosts`
/// listing them.
fn write_inventory(
    dir: &Path,
    ports: &[u16],
    known_hosts: &Path,
    gateway: &str,
) -> Result<PathBuf> {
    let mut inventory = format!(
        "all:\n  vars:\n    ssh_user: root\n    ssh_key_file: {}\n    ssh_known_hosts_file: {}\n    \
         lab_gateway: {gateway}\n  children:\n    mx:\n      hosts:\n",
        dir.join("client_ed25519").display(),
        known_hosts.display(),
    );
    for (i, port) in ports.iter().enumerate() {
        inventory.push_str(&format!(
            "        h{}: {{ ssh_host: 127.0.0.1, ssh_port: {port} }}\n",
            i + 1
        ));
    }
    let path = dir.join(format!("inventory-{}.yml", ports.len()));
    std::fs::write(&path, inventory)?;
    Ok(path)
}

/// The figures of one run from postfleet's JSON summary: hosts in sync in one round trip,
/// the first errors, mean phase timings.
fn read_summary(summary: &Value) -> (usize, Vec<String>, Phases) {
    let hosts = summary["hosts"].as_object().cloned().unwrap_or_default();
    let in_sync = |h: &Value| {
        h["error"].is_null()
            && h["unreachable"] == false
            && h["failed"] == 0
            && h["changed"] == 0
            && h["round_trips"] == 1
    };
    let errors: Vec<String> = hosts
        .iter()
        .filter(|(_, h)| !in_sync(h))
        .take(5)
        .map(|(name, h)| {
            format!(
                "{name}: changed {}, round trips {}, {}",
                h["changed"], h["round_trips"], h["error"]
            )
        })
        .collect();
    let converged = hosts.values().filter(|h| in_sync(h)).count();
    (converged, errors, Phases::from_summary(&hosts))
}

/// `--capture-probe`: converges h1 of the lab with this build, runs the facts probe on it
/// over ssh and stores the output as the simulator's answer.
pub fn capture_probe(paths: &Paths, lab: &LabRun) -> Result<()> {
    let host = lab.hosts.first().context("the lab has no hosts")?;
    let status = Command::new(&paths.built_postfleet)
        .arg("apply")
        .arg("-i")
        .arg(&lab.inventory)
        .args(["-l", &host.name, "--output", "plain"])
        .arg(paths.in_repo("playbooks/newsletter.yml"))
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("could not converge {} ({status})", host.name);
    }
    let extra = postfleet_core::inventory::VarMap::new();
    let inv = postfleet_core::inventory::load(&lab.inventory, &extra)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let playbook = postfleet_core::playbook::load(&paths.in_repo("playbooks/newsletter.yml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let inv_host = inv
        .hosts
        .iter()
        .find(|h| h.name == host.name)
        .context("h1 is not in the lab's inventory")?;
    let desired = postfleet_core::render::render_host(&playbook, &inv, inv_host, &extra)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut child = lab
        .ssh(host)
        .args(["sh", "-s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("ssh stdin")?
        .write_all(postfleet_core::facts::probe_script(&desired).as_bytes())?;
    let out = child.wait_with_output()?;
    let output = String::from_utf8(out.stdout)?;
    postfleet_core::facts::parse(&output).map_err(|e| anyhow::anyhow!("the probe output: {e}"))?;
    let fixture = ProbeFixture {
        host: host.name.clone(),
        lab: lab.name.clone(),
        gateway: lab.gateway.clone(),
        captured: crate::report::now_utc(),
        output,
    };
    let path = paths.in_repo(FIXTURE);
    std::fs::write(&path, serde_json::to_string_pretty(&fixture)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}
