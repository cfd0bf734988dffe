//! Runs, their summary table and their JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::check::Verdict;
use crate::sim::SimResult;
use crate::tools::Tool;
use crate::Case;

/// Mean seconds per host of each phase postfleet reports (`--json` summary timings).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Phases {
    pub connect: f64,
    pub facts: f64,
    pub plan: f64,
    pub apply: f64,
    pub total: f64,
}

impl Phases {
    /// Means over the hosts of a postfleet JSON summary's `hosts` map.
    pub fn from_summary(hosts: &serde_json::Map<String, Value>) -> Phases {
        let n = hosts.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Value) -> f64| hosts.values().map(f).sum::<f64>() / n;
        Phases {
            connect: mean(&|h| h["timings"]["connect"].as_f64().unwrap_or(0.0)),
            facts: mean(&|h| h["timings"]["facts"].as_f64().unwrap_or(0.0)),
            plan: mean(&|h| h["timings"]["plan"].as_f64().unwrap_or(0.0)),
            apply: mean(&|h| h["timings"]["apply"].as_f64().unwrap_or(0.0)),
            total: mean(&|h| h["duration"].as_f64().unwrap_or(0.0)),
        }
    }

    fn mean_of(all: &[&Phases]) -> Phases {
        let n = all.len().max(1) as f64;
        let mean = |f: fn(&Phases) -> f64| all.iter().map(|p| f(p)).sum::<f64>() / n;
        Phases {
            connect: mean(|p| p.connect),
            facts: mean(|p| p.facts),
            plan: mean(|p| p.plan),
            apply: mean(|p| p.apply),
            total: mean(|p| p.total),
        }
    }
}

/// One timed run of one tool over the lab.
#[derive(Debug, Clone)]
pub struct Run {
    pub tool: Tool,
    pub case: Case,
    pub rtt_ms: u32,
    pub rep: usize,
    pub wall: Duration,
    /// Why the run does not count (failed, timed out, did not converge), if so.
    pub error: Option<String>,
    /// Sum of the resident memory of everything the tool ran on the controller, at its peak.
    pub controller_peak_rss: u64,
    pub controller_cpu: Duration,
    pub host_cpu: Duration,
    /// Processes (PIDs) started per host during the run, mean over the hosts.
    pub pids_per_host: Option<f64>,
    /// A run against one host alone (the round-trip series), not a fleet run.
    pub alone: bool,
    /// With --bastion: the CPU the bastion used (part of host_cpu).
    pub bastion_cpu: Option<Duration>,
    /// postfleet only: SSH round trips per host.
    pub round_trips_per_host: Option<f64>,
    /// postfleet only.
    pub phases: Option<Phases>,
    /// Steps (postfleet) or tasks (Ansible) reported changed, over all hosts.
    pub changed: Option<u64>,
    pub fingerprint: String,
}

impl Run {
    pub fn timed(wall: Duration, timed_out: bool) -> Run {
        Run {
            tool: Tool::Postfleet,
            case: Case::First,
            rtt_ms: 0,
            rep: 0,
            wall,
            error: timed_out.then(|| format!("stopped after {:.0} s", wall.as_secs_f64())),
            controller_peak_rss: 0,
            controller_cpu: Duration::ZERO,
            host_cpu: Duration::ZERO,
            pids_per_host: None,
            alone: false,
            bastion_cpu: None,
            round_trips_per_host: None,
            phases: None,
            changed: None,
            fingerprint: String::new(),
        }
    }

    pub fn fail(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
    }

    pub fn counts(&self) -> bool {
        self.error.is_none()
    }

    pub fn take_postfleet_summary(&mut self, summary: &Value, hosts: usize) {
        let Some(per_host) = summary["hosts"].as_object() else {
            return self.fail("postfleet's summary has no hosts".into());
        };
        if per_host.len() != hosts {
            self.fail(format!(
                "postfleet reported {} hosts of {hosts}",
                per_host.len()
            ));
        }
        let sum = |key: &str| {
            per_host
                .values()
                .map(|h| h[key].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let bad: Vec<String> = per_host
            .iter()
            .filter(|(_, h)| h["failed"].as_u64() != Some(0) || h["unreachable"] != false)
            .map(|(name, h)| format!("{name}: {}", h["error"].as_str().unwrap_or("failed")))
            .collect();
        if !bad.is_empty() {
            self.fail(format!("postfleet failed on {}", bad.join("; ")));
        }
        self.round_trips_per_host = Some(sum("round_trips") as f64 / per_host.len().max(1) as f64);
        self.changed = Some(sum("changed"));
        self.phases = Some(Phases::from_summary(per_host));
    }

    /// The PLAY RECAP lines: `h1 : ok=12 changed=10 unreachable=0 failed=0 ...`.
    pub fn take_ansible_recap(&mut self, log: &str, hosts: usize) {
        let Some(recap) = log.split("PLAY RECAP").nth(1) else {
            return self.fail("ansible-playbook printed no PLAY RECAP".into());
        };
        let mut seen = 0;
        let mut changed = 0;
        for line in recap.lines().filter(|l| l.contains(" : ")) {
            seen += 1;
            let field = |key: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            changed += field("changed=");
            if field("failed=") > 0 || field("unreachable=") > 0 {
                self.fail(format!("ansible: {}", line.trim()));
            }
        }
        if seen != hosts {
            self.fail(format!("ansible's recap lists {seen} hosts of {hosts}"));
        }
        self.changed = Some(changed);
    }

    /// The end state, and for a no-change run, that nothing was changed.
    pub fn apply_verdict(&mut self, verdict: Verdict) {
        if !verdict.converged() {
            self.fail(format!(
                "did not converge: {}",
                verdict.mismatches.join("; ")
            ));
        }
        self.require_no_change();
        self.fingerprint = verdict.fingerprint;
    }

    /// A no-change run that reports changes does not count.
    pub fn require_no_change(&mut self) {
        if self.case == Case::NoChange && self.changed.is_some_and(|c| c > 0) {
            self.fail(format!(
                "the no-change run changed {} steps",
                self.changed.unwrap_or(0)
            ));
        }
    }

    pub fn progress_line(&self) -> String {
        format!(
            "{:<9} {:<9}{} {:>3} ms rep {}: {:>7.2} s  {}",
            self.tool.label(),
            self.case.label(),
            if self.alone { " (1 host alone)" } else { "" },
            self.rtt_ms,
            self.rep + 1,
            self.wall.as_secs_f64(),
            self.error.as_deref().unwrap_or("converged")
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "tool": self.tool,
            "case": self.case,
            "rtt_ms": self.rtt_ms,
            "rep": self.rep + 1,
            "wall_s": secs(self.wall),
            "converged": self.counts(),
            "error": self.error,
            "controller_peak_rss_mb": mb(self.controller_peak_rss),
            "controller_cpu_s": secs(self.controller_cpu),
            "host_cpu_s": secs(self.host_cpu),
            "pids_per_host": self.pids_per_host,
            "one_host_alone": self.alone,
            "bastion_cpu_s": self.bastion_cpu.map(secs),
            "round_trips_per_host": self.round_trips_per_host,
            "postfleet_phases_mean_s": self.phases,
            "changed": self.changed,
            "state_sha256": self.fingerprint,
        })
    }
}

/// Median, min, max of the runs of one tool in one case that count.
struct Stats {
    counted: usize,
    total: usize,
    median: f64,
    min: f64,
    max: f64,
    peak_rss: u64,
    controller_cpu: f64,
    host_cpu: f64,
    pids: Option<f64>,
    bastion_cpu: Option<f64>,
    round_trips: Option<f64>,
    phases: Option<Phases>,
}

impl Stats {
    fn of(runs: &[&Run]) -> Option<Stats> {
        let good: Vec<&&Run> = runs.iter().filter(|r| r.counts()).collect();
        if good.is_empty() {
            return None;
        }
        let mut walls: Vec<f64> = good.iter().map(|r| r.wall.as_secs_f64()).collect();
        walls.sort_by(f64::total_cmp);
        let median_of = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        let phases: Vec<&Phases> = good.iter().filter_map(|r| r.phases.as_ref()).collect();
        Some(Stats {
            counted: good.len(),
            total: runs.len(),
            median: median_of(walls.clone()),
            min: walls[0],
            max: walls[walls.len() - 1],
            peak_rss: good
                .iter()
                .map(|r| r.controller_peak_rss)
                .max()
                .unwrap_or(0),
            controller_cpu: median_of(good.iter().map(|r| secs(r.controller_cpu)).collect()),
            host_cpu: median_of(good.iter().map(|r| secs(r.host_cpu)).collect()),
            pids: good
                .iter()
                .all(|r| r.pids_per_host.is_some())
                .then(|| median_of(good.iter().filter_map(|r| r.pids_per_host).collect())),
            bastion_cpu: good.iter().all(|r| r.bastion_cpu.is_some()).then(|| {
                median_of(
                    good.iter()
                        .filter_map(|r| r.bastion_cpu.map(secs))
                        .collect(),
                )
            }),
            round_trips: good
                .iter()
                .filter_map(|r| r.round_trips_per_host)
                .reduce(f64::max),
            phases: (!phases.is_empty()).then(|| Phases::mean_of(&phases)),
        })
    }
}

pub struct Results {
    pub hosts: u32,
    pub reps: usize,
    pub sim_forks: usize,
    /// The lab's hosts were behind a bastion (--bastion).
    pub bastion: bool,
    pub ansible_version: Option<String>,
    pub runs: Vec<Run>,
    pub simulator: Option<SimResult>,
    pub total: Duration,
}

type Key = (u32, Case, Tool);

impl Results {
    pub fn new(hosts: u32, reps: usize, sim_forks: usize) -> Results {
        Results {
            hosts,
            reps,
            sim_forks,
            bastion: false,
            ansible_version: None,
            runs: Vec::new(),
            simulator: None,
            total: Duration::ZERO,
        }
    }

    fn grouped(&self) -> BTreeMap<Key, Vec<&Run>> {
        let mut groups: BTreeMap<Key, Vec<&Run>> = BTreeMap::new();
        for run in self.runs.iter().filter(|r| !r.alone) {
            groups
                .entry((run.rtt_ms, run.case, run.tool))
                .or_default()
                .push(run);
        }
        groups
    }

    fn median(&self, groups: &BTreeMap<Key, Vec<&Run>>, key: Key) -> Option<f64> {
        groups
            .get(&key)
            .and_then(|r| Stats::of(r))
            .map(|s| s.median)
    }

    fn host_cpu(&self, groups: &BTreeMap<Key, Vec<&Run>>, key: Key) -> Option<f64> {
        groups
            .get(&key)
            .and_then(|r| Stats::of(r))
            .map(|s| s.host_cpu)
    }

    pub fn render(&self) -> String {
        let groups = self.grouped();
        let mut out = String::new();
        if !self.runs.is_empty() {
            out.push_str(&format!(
                "\n{} lab hosts{}, newsletter playbook, {} repetitions{}\n\n",
                self.hosts,
                if self.bastion {
                    " behind one bastion"
                } else {
                    ""
                },
                self.reps,
                self.ansible_version
                    .as_deref()
                    .map(|v| format!(", {v}"))
                    .unwrap_or_default()
            ));
            out.push_str(&format!(
                "{:<10} {:>6}  {:<9} {:>8} {:>8} {:>8} {:>5} {:>11} {:>8} {:>9} {:>9} {:>8} {:>11}\n",
                "case",
                "rtt",
                "tool",
                "median",
                "min",
                "max",
                "runs",
                "ctl peak",
                "ctl CPU",
                "host CPU",
                "PIDs/host",
                "RT/host",
                if self.bastion { "bastion CPU" } else { "" }
            ));
            for ((rtt, case, tool), runs) in &groups {
                let Some(s) = Stats::of(runs) else {
                    out.push_str(&format!(
                        "{:<10} {:>3} ms  {:<9} no run converged: {}\n",
                        case.label(),
                        rtt,
                        tool.label(),
                        runs[0].error.as_deref().unwrap_or("")
                    ));
                    continue;
                };
                out.push_str(&format!(
                    "{:<10} {:>3} ms  {:<9} {:>6.2} s {:>6.2} s {:>6.2} s {:>2}/{:<2} {:>8.1} MB {:>6.2} s {:>7.2} s {:>9} {:>8} {:>11}\n",
                    case.label(),
                    rtt,
                    tool.label(),
                    s.median,
                    s.min,
                    s.max,
                    s.counted,
                    s.total,
                    mb(s.peak_rss),
                    s.controller_cpu,
                    s.host_cpu,
                    s.pids.map(|p| format!("{p:.0}")).unwrap_or_else(|| "-".into()),
                    s.round_trips.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into()),
                    s.bastion_cpu.map(|c| format!("{c:.2} s")).unwrap_or_default()
                ));
            }
            let failed: Vec<&Run> = self.runs.iter().filter(|r| !r.counts()).collect();
            if !failed.is_empty() {
                out.push_str("\nruns that do not count:\n");
                for run in failed {
                    out.push_str(&format!("  {}\n", run.progress_line()));
                }
            }
            out.push_str(
                "\nratios of medians       postfleet/floor  ansible/postfleet  host CPU postfleet/floor  postfleet/before  host CPU postfleet/before\n",
            );
            for (rtt, case) in self.cases() {
                let pf = self.median(&groups, (rtt, case, Tool::Postfleet));
                let floor = self.median(&groups, (rtt, case, Tool::Floor));
                let ansible = self.median(&groups, (rtt, case, Tool::Ansible));
                let before = self.median(&groups, (rtt, case, Tool::Before));
                let cpu = |tool| self.host_cpu(&groups, (rtt, case, tool));
                out.push_str(&format!(
                    "{:<10} {:>3} ms       {:>15} {:>18} {:>25} {:>17} {:>25}\n",
                    case.label(),
                    rtt,
                    ratio(pf, floor),
                    ratio(ansible, pf),
                    ratio(cpu(Tool::Postfleet), cpu(Tool::Floor)),
                    ratio(pf, before),
                    ratio(cpu(Tool::Postfleet), cpu(Tool::Before)),
                ));
            }
            out.push_str(&self.render_round_trips(&groups));
            out.push_str(
                "\nwhere postfleet's time goes (mean per host, s; from its --json timings)\n\
                 case          rtt   connect    facts     plan    apply    total\n",
            );
            for (rtt, case) in self.cases() {
                if let Some(p) = groups
                    .get(&(rtt, case, Tool::Postfleet))
                    .and_then(|r| Stats::of(r))
                    .and_then(|s| s.phases)
                {
                    out.push_str(&format!(
                        "{:<10} {:>3} ms  {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
                        case.label(),
                        rtt,
                        p.connect,
                        p.facts,
                        p.plan,
                        p.apply,
                        p.total
                    ));
                }
            }
        }
        if let Some(sim) = &self.simulator {
            out.push('\n');
            out.push_str(&sim.render());
        }
        out.push_str(&format!(
            "\nbenchmark took {:.0} s\n",
            self.total.as_secs_f64()
        ));
        out
    }

    /// Round trips per host of each tool: the slope of the no-change run's median wall time
    /// over the added round trip (least squares over every round trip measured), for the
    /// fleet and for one host alone. `None` with fewer than two round trips.
    fn round_trip_slopes(
        &self,
        groups: &BTreeMap<Key, Vec<&Run>>,
    ) -> Vec<(Tool, Option<f64>, Option<f64>)> {
        let mut tools: Vec<Tool> = self.runs.iter().map(|r| r.tool).collect();
        tools.sort();
        tools.dedup();
        tools
            .into_iter()
            .map(|tool| {
                let fleet: Vec<(f64, f64)> = self
                    .cases()
                    .into_iter()
                    .filter(|&(_, case)| case == Case::NoChange)
                    .filter_map(|(rtt, case)| {
                        Some((rtt as f64 / 1000.0, self.median(groups, (rtt, case, tool))?))
                    })
                    .collect();
                let mut alone_groups: BTreeMap<u32, Vec<&Run>> = BTreeMap::new();
                for run in self.runs.iter().filter(|r| r.alone && r.tool == tool) {
                    alone_groups.entry(run.rtt_ms).or_default().push(run);
                }
                let alone: Vec<(f64, f64)> = alone_groups
                    .iter()
                    .filter_map(|(rtt, runs)| Some((*rtt as f64 / 1000.0, Stats::of(runs)?.median)))
                    .collect();
                (tool, slope(&fleet), slope(&alone))
            })
            .collect()
    }

    fn render_round_trips(&self, groups: &BTreeMap<Key, Vec<&Run>>) -> String {
        let rtts: Vec<String> = {
            let mut r: Vec<u32> = self.runs.iter().map(|r| r.rtt_ms).collect();
            r.sort();
            r.dedup();
            r.iter().map(|r| r.to_string()).collect()
        };
        let mut out = format!(
            "\nround trips per host: slope of the no-change run's median wall time over the added \
             round trip ({} ms)\n{:<10} {:>12} {:>16}\n",
            rtts.join(", "),
            "tool",
            format!("{} hosts", self.hosts),
            "1 host alone"
        );
        let shown = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        for (tool, fleet, alone) in self.round_trip_slopes(groups) {
            out.push_str(&format!(
                "{:<10} {:>12} {:>16}\n",
                tool.label(),
                shown(fleet),
                shown(alone)
            ));
        }
        out
    }

    fn cases(&self) -> Vec<(u32, Case)> {
        let mut cases: Vec<(u32, Case)> = self
            .runs
            .iter()
            .filter(|r| !r.alone)
            .map(|r| (r.rtt_ms, r.case))
            .collect();
        cases.sort();
        cases.dedup();
        cases
    }

    pub fn to_json(&self) -> Value {
        let groups = self.grouped();
        let summary: Vec<Value> = groups
            .iter()
            .map(|((rtt, case, tool), runs)| match Stats::of(runs) {
                Some(s) => json!({
                    "rtt_ms": rtt, "case": case, "tool": tool,
                    "runs_counted": s.counted, "runs": s.total,
                    "median_s": round(s.median), "min_s": round(s.min), "max_s": round(s.max),
                    "controller_peak_rss_mb": mb(s.peak_rss),
                    "controller_cpu_s_median": round(s.controller_cpu),
                    "host_cpu_s_median": round(s.host_cpu),
                    "pids_per_host_median": s.pids,
                    "bastion_cpu_s_median": s.bastion_cpu.map(round),
                    "round_trips_per_host": s.round_trips,
                    "postfleet_phases_mean_s": s.phases,
                }),
                None => json!({
                    "rtt_ms": rtt, "case": case, "tool": tool,
                    "runs_counted": 0, "runs": runs.len(),
                }),
            })
            .collect();
        let ratios: Vec<Value> = self
            .cases()
            .into_iter()
            .map(|(rtt, case)| {
                let pf = self.median(&groups, (rtt, case, Tool::Postfleet));
                let floor = self.median(&groups, (rtt, case, Tool::Floor));
                let ansible = self.median(&groups, (rtt, case, Tool::Ansible));
                json!({
                    "rtt_ms": rtt, "case": case,
                    "postfleet_over_floor": pf.zip(floor).map(|(a, b)| round(a / b)),
                    "ansible_over_postfleet": ansible.zip(pf).map(|(a, b)| round(a / b)),
                    "host_cpu_postfleet_over_floor": self.host_cpu(&groups, (rtt, case, Tool::Postfleet))
                        .zip(self.host_cpu(&groups, (rtt, case, Tool::Floor)))
                        .map(|(a, b)| round(a / b)),
                    "postfleet_over_before": pf
                        .zip(self.median(&groups, (rtt, case, Tool::Before)))
                        .map(|(a, b)| round(a / b)),
                })
            })
            .collect();
        json!({
            "date": now_utc(),
            "machine": machine(),
            "hosts": self.hosts,
            "bastion": self.bastion,
            "reps": self.reps,
            "ansible": self.ansible_version,
            "summary": summary,
            "ratios": ratios,
            "round_trips_per_host": self
                .round_trip_slopes(&groups)
                .into_iter()
                .map(|(tool, fleet, alone)| json!({
                    "tool": tool, "fleet": fleet.map(round), "one_host_alone": alone.map(round),
                }))
                .collect::<Vec<_>>(),
            "runs": self.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
            "simulator": self.simulator.as_ref().map(SimResult::to_json),
            "sim_forks": self.sim_forks,
            "total_s": secs(self.total),
        })
    }
}

/// Least-squares slope of `points` (x, y); None with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

pub fn secs(d: Duration) -> f64 {
    round(d.as_secs_f64())
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn mb(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Cores, CPU model, memory and kernel of this machine.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: Option<u64> = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_gb": mem_kb.map(|k| (k as f64 / 1048576.0 * 10.0).round() / 10.0),
        "kernel": kernel.trim(),
    })
}
