//! Controller scale. A separate process (this binary, `sim-serve`) runs postfleet's SSH
//! simulator: N hosts on loopback, each answering the facts probe with the output captured
//! from a converged lab host (benches/sim/converged-probe.json), its host name swapped in.
//! The postfleet binary then converges them as a user runs it (`apply --json`: inventory,
//! render, plan, fleet runner, report and recap all included): a no-change run, one round
//! trip per host. Its wall time, CPU and peak RSS (wait4) are measured at 1 host and at N
//! hosts; the difference gives the cost per host.

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

/// What the simulated run measured.
#[derive(Debug, Clone)]
pub struct SimResult {
    pub hosts: usize,
    pub forks: usize,
    /// The postfleet run's wall time at N hosts, and at 1 (from start to exit).
    pub wall: Duration,
    pub wall_one: Duration,
    /// The controller process's peak RSS at N hosts, and at 1.
    pub peak_rss: u64,
    pub peak_rss_one: u64,
    pub controller_cpu: Duration,
    pub converged: usize,
    pub errors: Vec<String>,
    pub phases: Phases,
}

impl SimResult {
    fn per_host_wall(&self) -> Duration {
        self.wall / self.hosts.max(1) as u32
    }

    fn per_host_rss(&self) -> u64 {
        self.peak_rss.saturating_sub(self.peak_rss_one) / (self.hosts.max(2) as u64 - 1)
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "controller scale: {} simulated hosts (postfleet's SSH simulator, a separate process \
             on the same cores), no-change run of the postfleet binary, forks {}\n",
            self.hosts, self.forks
        );
        s.push_str(&format!(
            "  wall {:.2} s ({:.2} ms per host); controller peak RSS {:.1} MB ({:.1} MB at 1 host: \
             {:.1} KB per extra host); controller CPU {:.2} s; {}/{} hosts in sync in 1 round trip\n",
            self.wall.as_secs_f64(),
            self.per_host_wall().as_secs_f64() * 1000.0,
            mb(self.peak_rss),
            mb(self.peak_rss_one),
            self.per_host_rss() as f64 / 1024.0,
            self.controller_cpu.as_secs_f64(),
            self.converged,
            self.hosts
        ));
        s.push_str(&format!(
            "  mean per host: connect {:.3} s, facts {:.3} s, plan {:.4} s (1 host alone: {:.3} s)\n",
            self.phases.connect,
            self.phases.facts,
            self.phases.plan,
            self.wall_one.as_secs_f64()
        ));
        for e in self.errors.iter().take(3) {
            s.push_str(&format!("  error: {e}\n"));
        }
        s
    }

    pub fn to_json(&self) -> Value {
        json!({
            "hosts": self.hosts,
            "forks": self.forks,
            "wall_s": secs(self.wall),
            "wall_one_host_s": secs(self.wall_one),
            "per_host_ms": round(self.per_host_wall().as_secs_f64() * 1000.0),
            "controller_peak_rss_mb": mb(self.peak_rss),
            "controller_peak_rss_one_host_mb": mb(self.peak_rss_one),
            "per_extra_host_kb": round(self.per_host_rss() as f64 / 1024.0),
            "controller_cpu_s": secs(self.controller_cpu),
            "converged": self.converged,
            "errors": self.errors,
            "postfleet_phases_mean_s": self.phases,
        })
    }
}

/// The simulated run: starts the simulator, measures `postfleet` at 1 and N hosts.
pub fn run(paths: &Paths, postfleet: &Path, hosts: usize, forks: usize) -> Result<SimResult> {
    let fixture: ProbeFixture = serde_json::from_str(
        &std::fs::read_to_string(paths.in_repo(FIXTURE))
            .with_context(|| format!("read {FIXTURE}"))?,
    )
    .with_context(|| format!("parse {FIXTURE}"))?;
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
    let ports_file = std::fs::read_to_string(dir.join("ports"))?;
    let ports: Vec<u16> = ports_file
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let controller = |n: usize| -> Result<(Value, u64, Duration)> {
        let inventory = write_inventory(&dir, &ports[..n], &fixture.gateway)?;
        let cgroup = measure::RunCgroup::create("pfbench-sim")?;
        let cpu_before = cgroup.cpu();
        let mut cmd = Command::new(postfleet);
        cmd.arg("apply")
            .arg("-i")
            .arg(&inventory)
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
        let ended = measure::wait(child, Instant::now() + Duration::from_secs(600));
        let wall = started.elapsed();
        let cpu = cgroup.cpu().saturating_sub(cpu_before);
        cgroup.remove();
        let summary: Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("no JSON summary from postfleet ({:?})", ended.status))?;
        Ok((read_summary(&summary, wall), ended.max_rss, cpu))
    };
    let one = controller(1);
    let all = one.and_then(|one| Ok((one, controller(hosts)?)));
    // Closing its stdin stops the simulator.
    drop(server.stdin.take());
    let _ = server.wait();
    let ((one, rss_one, _), (all, rss_all, cpu_all)) = all?;
    let phases: Phases = serde_json::from_value(all["phases"].clone()).unwrap_or_default();
    Ok(SimResult {
        hosts,
        forks,
        wall: Duration::from_secs_f64(all["wall_s"].as_f64().unwrap_or(0.0)),
        wall_one: Duration::from_secs_f64(one["wall_s"].as_f64().unwrap_or(0.0)),
        peak_rss: rss_all,
        peak_rss_one: rss_one,
        controller_cpu: cpu_all,
        converged: all["converged"].as_u64().unwrap_or(0) as usize,
        errors: all["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        phases,
    })
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
/// files it carries (base64): `myhostname = newsletter.h1.invalid` and the like.
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

/// The simulated fleet as an inventory: every host on 127.0.0.1 at its port.
fn write_inventory(dir: &Path, ports: &[u16], gateway: &str) -> Result<PathBuf> {
    let mut inventory = format!(
        "all:\n  vars:\n    ssh_user: root\n    ssh_key_file: {}\n    ssh_known_hosts_file: {}\n    \
         lab_gateway: {gateway}\n  children:\n    mx:\n      hosts:\n",
        dir.join("client_ed25519").display(),
        dir.join("known_hosts").display(),
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
fn read_summary(summary: &Value, wall: Duration) -> Value {
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
    let n = hosts.len().max(1) as f64;
    let mean = |key: &str| {
        hosts
            .values()
            .map(|h| {
                h["timings"][key]
                    .as_f64()
                    .or(h[key].as_f64())
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
            / n
    };
    let phases = Phases {
        connect: mean("connect"),
        facts: mean("facts"),
        plan: mean("plan"),
        apply: mean("apply"),
        total: mean("duration"),
    };
    json!({
        "wall_s": wall.as_secs_f64(),
        "converged": hosts.values().filter(|h| in_sync(h)).count(),
        "errors": errors,
        "phases": phases,
    })
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
