//! postfleet against the floor and Ansible on the same lab, and the controller against
//! 1,000 and 10,000 simulated hosts. Not a test: run it by hand (root, a machine that can run the lab):
//!
//! ```text
//! cargo bench --bench fleet -- [--hosts 10] [--rtt-ms 40] [--reps 3] [--json out.json]
//! ```
//!
//! For each round trip (0 ms, then `--rtt-ms`) and each repetition, every tool in turn (the
//! order rotates) gets freshly reset hosts, converges them ("first run"), then runs again
//! ("no-change run"). After every run each host's end state is compared with
//! benches/check/expected.txt; a run that does not converge is reported, not timed. See
//! BENCHMARKS.md for what is measured and how.

mod check;
mod lab;
mod measure;
mod report;
mod sim;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    about = "postfleet against the floor and Ansible, and against 1000 and 10000 simulated hosts"
)]
struct Args {
    /// Lab hosts (h1..hN).
    #[arg(long, default_value_t = 10)]
    hosts: u32,
    /// Added round trips of the further sets of cases, after the 0 ms one (0: only 0 ms).
    /// With two or more, the round trips per host are read off the slope of the no-change
    /// wall time over the round trip.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "40,100",
        value_name = "MS,..."
    )]
    rtt_ms: Vec<u32>,
    /// No-change runs against one host alone at every round trip (per tool), for its round
    /// trips without other hosts sharing the cores (0: none).
    #[arg(long, default_value_t = 3, value_name = "N")]
    alone_reps: usize,
    /// Repetitions of every case and tool (median, min and max are over these).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Also write the results here as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The lab to use (created if missing, left up with --keep-lab).
    #[arg(long, default_value = "bench")]
    lab: String,
    /// Which tools to run.
    #[arg(long, value_delimiter = ',', default_value = "postfleet,floor,ansible")]
    tools: Vec<tools::Tool>,
    /// Which cases to run.
    #[arg(long, value_delimiter = ',', default_value = "first,no-change")]
    cases: Vec<Case>,
    /// Another postfleet binary to measure (e.g. an older build); default: this build's.
    #[arg(long, value_name = "BIN")]
    postfleet: Option<PathBuf>,
    /// Also run this postfleet binary on the lab (labelled "before"), in turns with the other
    /// tools: a change measured before and after in the same run.
    #[arg(long, value_name = "BIN")]
    before: Option<PathBuf>,
    /// Fleet sizes of the controller-scale run, e.g. 1000,10000 (each also measured against
    /// a 1-host run; 0: skip it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000",
        value_name = "N,..."
    )]
    sim_hosts: Vec<usize>,
    /// Repetitions of each simulated run (each figure is the median).
    #[arg(long, default_value_t = 1)]
    sim_reps: usize,
    /// Also measure this postfleet binary on the simulated hosts (labelled "before"),
    /// taking turns with the measured build at every size.
    #[arg(long, value_name = "BIN")]
    sim_before: Option<PathBuf>,
    /// Hosts the controller works on at once in the simulated run (postfleet's default: 50).
    #[arg(long, default_value_t = 50)]
    sim_forks: usize,
    /// Only the simulated run: no lab.
    #[arg(long)]
    sim_only: bool,
    /// Leave the lab up at the end.
    #[arg(long)]
    keep_lab: bool,
    /// Put the lab's hosts behind one bastion (`lab up --bastion`): every tool reaches them
    /// through it (postfleet: one connection to it; the floor and Ansible: ProxyJump), and the
    /// bastion's CPU is reported.
    #[arg(long)]
    bastion: bool,
    /// Refresh benches/sim/converged-probe.json from h1 of the lab (converged first), then stop.
    #[arg(long)]
    capture_probe: bool,
    /// Seconds one tool run may take before it is stopped and reported.
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    run_timeout: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    #[command(subcommand)]
    child: Option<ChildRole>,
}

/// What a re-executed copy of this binary does (the simulated hosts' process).
#[derive(Debug, Subcommand)]
enum ChildRole {
    #[command(hide = true)]
    SimServe(sim::ServeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// Freshly reset hosts.
    First,
    /// Hosts the same tool has just converged.
    NoChange,
}

impl Case {
    pub fn label(self) -> &'static str {
        match self {
            Case::First => "first run",
            Case::NoChange => "no-change",
        }
    }
}

/// Where the bench's files are: the repository and target/bench.
pub struct Paths {
    pub repo: PathBuf,
    pub work: PathBuf,
    /// The postfleet binary of this checkout, release profile (built first if stale).
    pub built_postfleet: PathBuf,
}

impl Paths {
    fn new() -> Result<Paths> {
        // This bench is the package crates/postfleet-bench: the repository is two levels up.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()?;
        let work = repo.join("target").join("bench");
        std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let built = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "postfleet",
                "--bin",
                "postfleet",
            ])
            .current_dir(&repo)
            .status()
            .context("build postfleet (release)")?;
        if !built.success() {
            bail!("building postfleet failed ({built})");
        }
        // Where that build went: CARGO_TARGET_DIR if set (relative: to the repository).
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| repo.join(dir))
            .unwrap_or_else(|| repo.join("target"));
        Ok(Paths {
            built_postfleet: target.join("release/postfleet"),
            repo,
            work,
        })
    }

    pub fn in_repo(&self, rel: &str) -> PathBuf {
        self.repo.join(rel)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.child {
        Some(ChildRole::SimServe(ref serve)) => sim::serve(serve),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let paths = Paths::new()?;
    let started = std::time::Instant::now();
    let mut results = report::Results::new(args.hosts, args.reps, args.sim_forks);
    if args.capture_probe {
        let lab = lab::LabRun::prepare(&paths, &args.lab, args.hosts, false)?;
        return sim::capture_probe(&paths, &lab);
    }
    if !args.sim_only {
        if args.hosts == 0 || args.reps == 0 {
            bail!("--hosts and --reps must be at least 1");
        }
        let postfleet = args
            .postfleet
            .clone()
            .unwrap_or_else(|| paths.built_postfleet.clone());
        let lab = lab::LabRun::prepare(&paths, &args.lab, args.hosts, args.bastion)?;
        results.bastion = args.bastion;
        let kit = tools::Kit::prepare(
            &paths,
            &lab,
            &postfleet,
            args.before.as_deref(),
            &args.tools,
        )?;
        results.ansible_version = kit.ansible_version().map(String::from);
        let outcome = run_lab_cases(args, &paths, &lab, &kit, &mut results);
        kit.cleanup();
        if !args.keep_lab {
            lab.down()?;
        }
        outcome?;
    }
    let mut sizes: Vec<usize> = args.sim_hosts.iter().copied().filter(|&n| n > 0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if !sizes.is_empty() {
        let postfleet = args
            .postfleet
            .clone()
            .unwrap_or_else(|| paths.built_postfleet.clone());
        let mut builds = Vec::new();
        if let Some(before) = &args.sim_before {
            builds.push(("before".to_string(), before.clone()));
        }
        let label = if args.sim_before.is_some() {
            "after"
        } else {
            "postfleet"
        };
        builds.push((label.to_string(), postfleet));
        results.simulator = Some(sim::run(
            &paths,
            &builds,
            &sizes,
            args.sim_forks,
            args.sim_reps.max(1),
        )?);
    }
    results.total = started.elapsed();
    let text = results.render();
    println!("{text}");
    if let Some(path) = &args.json {
        // cargo runs a bench in its package's directory: a relative path means the repository's.
        let path = paths.repo.join(path);
        write_json(&path, &results)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

fn run_lab_cases(
    args: &Args,
    paths: &Paths,
    lab: &lab::LabRun,
    kit: &tools::Kit,
    results: &mut report::Results,
) -> Result<()> {
    let expected = std::fs::read_to_string(paths.in_repo("benches/check/expected.txt"))
        .context("read benches/check/expected.txt")?;
    let mut rtts = vec![0];
    for &rtt in &args.rtt_ms {
        if !rtts.contains(&rtt) {
            rtts.push(rtt);
        }
    }
    let timeout = Duration::from_secs(args.run_timeout);
    for &rtt in &rtts {
        for rep in 0..args.reps {
            // Alternate who goes first, so slow drifts of the machine spread over every tool.
            let mut order = args.tools.clone();
            if args.before.is_some() && !order.contains(&tools::Tool::Before) {
                order.push(tools::Tool::Before);
            }
            let turn = rep % order.len().max(1);
            order.rotate_left(turn);
            for &tool in &order {
                lab.reset_all(rtt)?;
                for &case in [Case::First, Case::NoChange].iter() {
                    let wanted = args.cases.contains(&case);
                    // A no-change run needs hosts this tool converged: the first run happens
                    // even when only no-change runs are asked for, untimed.
                    if !wanted && case == Case::NoChange {
                        continue;
                    }
                    lab.wait_until_quiet();
                    let pids_before = lab.pids_allocated();
                    let host_cpu_before = lab.host_cpu();
                    let bastion_cpu_before = lab.bastion_cpu();
                    let mut run = kit.run(tool, case, None, timeout)?;
                    run.host_cpu = lab.host_cpu().saturating_sub(host_cpu_before);
                    run.pids_per_host = lab.pids_per_host(&pids_before);
                    run.bastion_cpu = lab
                        .bastion_cpu()
                        .zip(bastion_cpu_before)
                        .map(|(after, before)| after.saturating_sub(before));
                    run.rtt_ms = rtt;
                    run.rep = rep;
                    let verdict = check::verify(lab, &expected);
                    run.apply_verdict(verdict);
                    println!("{}", run.progress_line());
                    let converged = run.counts();
                    if wanted {
                        results.runs.push(run);
                    }
                    if case == Case::NoChange && wanted && converged {
                        // The same converged hosts, one at a time: no host shares the cores.
                        let host = &lab.hosts[0];
                        for _ in 0..args.alone_reps {
                            lab.wait_until_quiet();
                            let mut alone = kit.run(tool, case, Some(host), timeout)?;
                            alone.rtt_ms = rtt;
                            alone.rep = rep;
                            alone.alone = true;
                            alone.require_no_change();
                            println!("{}", alone.progress_line());
                            results.runs.push(alone);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_json(path: &Path, results: &report::Results) -> Result<()> {
    let text = serde_json::to_string_pretty(&results.to_json())?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
}
