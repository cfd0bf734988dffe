//! Applying a plan on a fleet: per host, connect once, gather facts in one round trip,
//! plan locally, then apply in one more round trip, reporting as steps finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::report::{ApplyOutcome, Event, Reporter, StepStatus};
use postfleet_core::apply::{self as script, ScriptLine};
use postfleet_core::facts;
use postfleet_core::inventory::Host;
use postfleet_core::model::DesiredHost;
use postfleet_core::outcome::{HostProblem, Verdict};
use postfleet_core::plan::{self, FileChange, Plan, PlanOptions};
use postfleet_core::rollout::StopRule;
use postfleet_ssh::{Session, SshError};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Plan only: report what would change, change nothing.
    pub check: bool,
    pub force: bool,
    /// Hosts worked on at once.
    pub forks: usize,
    /// Every host's connection, through jump hosts.
    pub connector: Arc<crate::reach::Connector>,
}

/// One host and what the playbook wants on it.
#[derive(Debug, Clone)]
pub struct HostJob {
    pub host: Host,
    pub desired: DesiredHost,
}

/// Set by Ctrl-C: hosts not yet started are skipped; running ones finish their round trip.
#[derive(Debug, Default)]
pub struct StopFlag(AtomicBool);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How the hosts of a run go: in batches, and when to stop starting them.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Batch sizes, in order, adding up to the number of jobs.
    pub batches: Vec<usize>,
    pub stop: StopRule,
    /// Check mode plans every batch: nothing is changed, so nothing needs stopping.
    pub never_stop: bool,
}

/// Runs every host, batch after batch (at most `opts.forks` at once inside one), each
/// reporting as it goes; the outcomes come back in job order, the hosts the rollout never
/// started included (`HostProblem::NotAttempted`).
pub async fn run_fleet(
    jobs: Vec<HostJob>,
    opts: Arc<RunOptions>,
    reporter: Arc<dyn Reporter>,
    stop: Arc<StopFlag>,
    rollout: &Rollout,
) -> Vec<ApplyOutcome> {
    let total = jobs.len();
    let batches = rollout.batches.len();
    // Check mode changes nothing, so nothing needs stopping: every batch is planned at once,
    // and the batches are only shown.
    if rollout.never_stop {
        let mut first = 0;
        for (index, &size) in rollout.batches.iter().enumerate().filter(|_| batches > 1) {
            reporter.event(&Event::BatchStart {
                index: index + 1,
                batches,
                hosts: jobs[first..first + size]
                    .iter()
                    .map(|j| j.host.name.clone())
                    .collect(),
            });
            first += size;
        }
        let (failed, halt) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut outcomes = run_batch(
            jobs, &opts, &reporter, &stop, rollout, total, &failed, &halt,
        )
        .await;
        let mut at = 0;
        for (index, &size) in rollout.batches.iter().enumerate().filter(|_| batches > 1) {
            for outcome in &mut outcomes[at..at + size] {
                outcome.value.batch = index + 1;
            }
            at += size;
        }
        return outcomes;
    }
    // Failed or unreachable hosts so far, over every batch; set: start no more hosts.
    let failed = Arc::new(AtomicUsize::new(0));
    let halt = Arc::new(AtomicBool::new(false));
    let mut reason: Option<String> = None;
    let mut outcomes: Vec<ApplyOutcome> = Vec::with_capacity(total);
    let mut left = jobs.into_iter();
    for (index, &size) in rollout.batches.iter().enumerate() {
        let batch: Vec<HostJob> = left.by_ref().take(size).collect();
        let first = outcomes.len();
        let number = |outcomes: &mut Vec<ApplyOutcome>| {
            if batches > 1 {
                for outcome in &mut outcomes[first..] {
                    outcome.value.batch = index + 1;
                }
            }
        };
        if stop.stopped() && reason.is_none() {
            reason = Some("interrupted (Ctrl-C): later batches were not started".into());
            halt.store(true, Ordering::SeqCst);
        }
        if halt.load(Ordering::SeqCst) {
            outcomes.extend(batch.iter().map(not_attempted));
            number(&mut outcomes);
            continue;
        }
        if batches > 1 {
            reporter.event(&Event::BatchStart {
                index: index + 1,
                batches,
                hosts: batch.iter().map(|j| j.host.name.clone()).collect(),
            });
        }
        let before = failed.load(Ordering::SeqCst);
        let done = run_batch(
            batch, &opts, &reporter, &stop, rollout, total, &failed, &halt,
        )
        .await;
        outcomes.extend(done);
        number(&mut outcomes);
        // Counted from the outcomes (a host whose task panicked counts too).
        let now = outcomes
            .iter()
            .filter(|o| matches!(o.verdict(), Verdict::Failed | Verdict::Unreachable))
            .count();
        failed.store(now, Ordering::SeqCst);
        if batches > 1 {
            reporter.event(&Event::BatchEnd {
                index: index + 1,
                batches,
                failed: now - before,
            });
        }
        if rollout.stop.stops(now, total, true) {
            halt.store(true, Ordering::SeqCst);
        }
        if halt.load(Ordering::SeqCst) && reason.is_none() {
            let why = rollout
                .stop
                .reason(now, total, now - before, index + 1, batches);
            reason = Some(why);
        }
    }
    let never: Vec<String> = outcomes
        .iter()
        .filter(|o| matches!(o.problem, Some(HostProblem::NotAttempted(_))))
        .map(|o| o.host.clone())
        .collect();
    if let Some(reason) = reason.filter(|_| !never.is_empty()) {
        for outcome in &mut outcomes {
            if let Some(HostProblem::NotAttempted(why)) = &mut outcome.problem {
                why.clone_from(&reason);
            }
        }
        reporter.event(&Event::RolloutStopped {
            reason,
            not_attempted: never,
        });
    }
    outcomes
}

fn not_attempted(job: &HostJob) -> ApplyOutcome {
    ApplyOutcome::stopped(
        job.host.name.clone(),
        HostProblem::NotAttempted("the rollout stopped".into()),
    )
}

/// One batch: every host of it, at most `opts.forks` at once; a host not started yet when
/// `halt` is set (by the stop rule, or Ctrl-C) is not started at all.
#[allow(clippy::too_many_arguments)]
async fn run_batch(
    jobs: Vec<HostJob>,
    opts: &Arc<RunOptions>,
    reporter: &Arc<dyn Reporter>,
    stop: &Arc<StopFlag>,
    rollout: &Rollout,
    total: usize,
    failed: &Arc<AtomicUsize>,
    halt: &Arc<AtomicBool>,
) -> Vec<ApplyOutcome> {
    let forks = opts.forks;
    let names: Vec<String> = jobs.iter().map(|j| j.host.name.clone()).collect();
    let panic_reporter = reporter.clone();
    let on_panic = move |index: usize, message: String| {
        let summary = ApplyOutcome {
            host: names[index].clone(),
            problem: Some(HostProblem::Failed(format!(
                "internal error (a bug in postfleet, please report it): {message}"
            ))),
            ..Default::default()
        };
        panic_reporter.event(&Event::HostDone {
            summary: summary.clone(),
        });
        summary
    };
    let rule = (!rollout.never_stop).then_some(rollout.stop);
    let (opts, reporter, stop) = (opts.clone(), reporter.clone(), stop.clone());
    let (failed, halt) = (failed.clone(), halt.clone());
    crate::fleet::bounded(
        jobs,
        forks,
        move |job: HostJob| {
            let (opts, reporter, stop) = (opts.clone(), reporter.clone(), stop.clone());
            let (failed, halt) = (failed.clone(), halt.clone());
            // Boxed: every host's task exists from the start, but only `forks` of them run; a
            // waiting task then holds a pointer, not room for a whole connection's state.
            let host: Pin<Box<dyn Future<Output = ApplyOutcome> + Send>> = Box::pin(async move {
                if halt.load(Ordering::SeqCst) {
                    return not_attempted(&job);
                }
                let summary = if stop.stopped() {
                    ApplyOutcome {
                        host: job.host.name.clone(),
                        problem: Some(HostProblem::Failed("not started: interrupted".into())),
                        ..Default::default()
                    }
                } else {
                    run_host(&job, &opts, reporter.as_ref()).await
                };
                if matches!(summary.verdict(), Verdict::Failed | Verdict::Unreachable) {
                    let now = failed.fetch_add(1, Ordering::SeqCst) + 1;
                    if rule.is_some_and(|r| r.stops(now, total, false)) {
                        halt.store(true, Ordering::SeqCst);
                    }
                }
                reporter.event(&Event::HostDone {
                    summary: summary.clone(),
                });
                summary
            });
            host
        },
        on_panic,
    )
    .await
}

fn step_event(
    reporter: &dyn Reporter,
    summary: &mut ApplyOutcome,
    name: String,
    status: StepStatus,
    message: Option<String>,
    diff: Option<String>,
) {
    match status {
        StepStatus::Ok => summary.value.ok += 1,
        StepStatus::Changed => summary.value.changed += 1,
        StepStatus::Failed => summary.value.failed += 1,
        StepStatus::Skipped => {}
    }
    reporter.event(&Event::Step {
        host: summary.host.clone(),
        name,
        status,
        message,
        diff,
    });
}

/// The diff text of a step's file changes, secrets hidden.
pub fn render_changes(changes: &[FileChange]) -> Option<String> {
    if changes.is_empty() {
        return None;
    }
    // main.cf and master.cf per parameter and service; other files as unified diffs.
    let parts: Vec<String> = changes
        .iter()
        .map(|c| match (plan::changes::by_setting(c), c.shown()) {
            (Some(lines), _) => {
                let mut text = format!("{}:\n", c.path);
                for line in lines {
                    text.push_str(&format!("  {line}\n"));
                }
                text
            }
            (None, None) => crate::report::diff::redacted(&c.path),
            (None, Some((old, new))) => crate::report::diff::unified(&c.path, &old, &new),
        })
        .collect();
    Some(parts.join(""))
}

async fn run_host(job: &HostJob, opts: &RunOptions, reporter: &dyn Reporter) -> ApplyOutcome {
    let started = Instant::now();
    let host = job.host.name.clone();
    let mut summary = ApplyOutcome {
        host: host.clone(),
        ..Default::default()
    };
    let phase = |p: &str| {
        reporter.event(&Event::HostPhase {
            host: host.clone(),
            phase: p.to_string(),
        })
    };

    phase("connecting");
    let t = Instant::now();
    let session = match opts.connector.connect(&job.host.name).await {
        Ok(s) => s,
        Err(e) => {
            summary.value.timings.connect = t.elapsed();
            summary.value.duration = started.elapsed();
            summary.problem = Some(HostProblem::Unreachable(e.to_string()));
            return summary;
        }
    };
    summary.value.timings.connect = t.elapsed();

    let result = converge(job, opts, reporter, &session, &mut summary).await;
    summary.value.round_trips = session.round_trips();
    session.close().await;
    summary.problem = result.err();
    summary.value.duration = started.elapsed();
    summary
}

/// An SSH failure during `what` (facts, apply), as the host's problem.
fn ssh_failure(what: &str, e: SshError) -> HostProblem {
    match crate::fleet::problem_of(e) {
        HostProblem::Unreachable(text) => HostProblem::Unreachable(format!("{what}: {text}")),
        HostProblem::Failed(text) => HostProblem::Failed(format!("{what}: {text}")),
        other => other,
    }
}

async fn read_facts(job: &HostJob, session: &Session) -> Result<facts::HostFacts, HostProblem> {
    let probe = facts::probe_script(&job.desired);
    let out = session
        .run_script(&probe, &mut |_| {})
        .await
        .map_err(|e| ssh_failure("facts", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    facts::parse(&stdout).map_err(|e| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        HostProblem::Failed(format!("facts: {e}; {}", stderr.trim()))
    })
}

/// An earlier apply was killed half-way on this host: put back the files its open
/// transaction replaced and remove its scratch files, so the plan starts from a whole
/// configuration (check mode only says it would). One step, "recover an interrupted apply".
async fn recover(
    opts: &RunOptions,
    reporter: &dyn Reporter,
    session: &Session,
    summary: &mut ApplyOutcome,
    facts: &facts::HostFacts,
) -> Result<(), HostProblem> {
    let found: Vec<&str> = facts
        .interrupted
        .iter()
        .chain(&facts.leftovers)
        .map(String::as_str)
        .collect();
    let mut report = |status: StepStatus, message: String| {
        let name = "recover an interrupted apply".to_string();
        step_event(reporter, summary, name, status, Some(message), None);
    };
    if opts.check {
        report(
            StepStatus::Changed,
            format!(
                "an earlier apply was interrupted; apply first puts back what it left: {}",
                found.join(", ")
            ),
        );
        return Ok(());
    }
    let out = session
        .run_script(&postfleet_core::apply::recover_script(facts), &mut |_| {})
        .await
        .map_err(|e| ssh_failure("recovery", e))?;
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().replace('\n', "; ");
    if out.exit_status != Some(0) {
        report(
            StepStatus::Failed,
            format!(
                "an earlier apply was interrupted and what it left could not be put back ({}): {}",
                found.join(", "),
                said(&out.stderr)
            ),
        );
        return Err(HostProblem::Failed(
            "recovery of an interrupted apply failed".into(),
        ));
    }
    let done = said(&out.stdout);
    // Nothing done: another run is applying there right now, and what is open is its own.
    if !done.is_empty() {
        report(
            StepStatus::Changed,
            format!("an earlier apply was interrupted: {done}"),
        );
    }
    Ok(())
}

async fn converge(
    job: &HostJob,
    opts: &RunOptions,
    reporter: &dyn Reporter,
    session: &Session,
    summary: &mut ApplyOutcome,
) -> Result<(), HostProblem> {
    let host = job.host.name.clone();
    reporter.event(&Event::HostPhase {
        host: host.clone(),
        phase: "gathering facts".into(),
    });
    let t = Instant::now();
    let mut facts = read_facts(job, session).await?;
    if facts.needs_recovery() {
        recover(opts, reporter, session, summary, &facts).await?;
        if !opts.check {
            facts = read_facts(job, session).await?;
        }
    }
    summary.value.timings.facts = t.elapsed();

    let t = Instant::now();
    let plan = plan::plan(&job.desired, &facts, PlanOptions { force: opts.force })
        .map_err(|e| HostProblem::Failed(e.to_string()))?;
    summary.value.timings.plan = t.elapsed();

    for refusal in &plan.refusals {
        step_event(
            reporter,
            summary,
            format!("{}: refused", refusal.instance),
            StepStatus::Failed,
            Some(refusal.reason.clone()),
            None,
        );
    }
    for drift in &plan.drift {
        summary.value.drift += 1;
        reporter.event(&Event::Drift {
            host: host.clone(),
            drift: drift.clone(),
        });
    }
    report_converged_instances(job, &plan, reporter, summary);

    // Nothing to change. Records alone (missing, or out of date after drift that matches the
    // playbook) are written by an apply of their own; check mode writes nothing.
    if plan.is_empty() || (opts.check && plan.steps.is_empty()) {
        return Ok(());
    }
    if opts.check {
        for step in &plan.steps {
            step_event(
                reporter,
                summary,
                step.title(),
                StepStatus::Changed,
                Some(step.summary.clone()),
                render_changes(&step.changes),
            );
        }
        return Ok(());
    }

    reporter.event(&Event::HostPhase {
        host: host.clone(),
        phase: "applying".into(),
    });
    let t = Instant::now();
    let script = script::build(&plan, &postfleet_core::drift::Stamp::now());
    let mut reported = vec![false; plan.steps.len()];
    let mut fatal: Option<String> = None;
    let mut ended = false;
    // One reader for the lines the script prints, and for the ones it recorded on the host
    // when the connection was lost: a step is reported once.
    let mut on_line = |line: &str| match script::parse_line(line) {
        Some(ScriptLine::Step {
            index,
            status,
            message,
        }) if index < plan.steps.len() && !reported[index] => {
            reported[index] = true;
            let step = &plan.steps[index];
            let diff = if status == StepStatus::Changed {
                render_changes(&step.changes)
            } else {
                None
            };
            step_event(
                reporter,
                summary,
                step.title(),
                status,
                Some(message).filter(|m| !m.is_empty()),
                diff,
            );
        }
        Some(ScriptLine::Fatal(text)) => fatal = Some(text),
        Some(ScriptLine::End) => ended = true,
        _ => {}
    };
    // The apply script carries file contents (tables may be secret): never in argv.
    let result = session.run_script_private(&script, &mut on_line).await;
    let out = match result {
        Ok(out) => Some(out),
        // The script goes on without us (it ignores HUP and PIPE): reconnect, wait for it to
        // end, and report what it recorded, rather than "unreachable" and "not run".
        Err(e) if e.is_lost_connection() => {
            reporter.event(&Event::HostPhase {
                host: host.clone(),
                phase: "connection lost: reconnecting to read what the apply did".into(),
            });
            match read_recorded_outcome(job, opts, plan.generation).await {
                Ok(text) => {
                    for line in text.lines() {
                        on_line(line);
                    }
                    None
                }
                Err(why) => {
                    return Err(HostProblem::Unreachable(format!(
                        "apply: {e}; reconnecting to read its outcome: {why}"
                    )))
                }
            }
        }
        Err(e) => return Err(ssh_failure("apply", e)),
    };
    summary.value.timings.apply = t.elapsed();
    for (index, done) in reported.iter().enumerate() {
        if !done {
            step_event(
                reporter,
                summary,
                plan.steps[index].title(),
                StepStatus::Skipped,
                Some("not run: an earlier step failed".into()),
                None,
            );
        }
    }
    if let Some(text) = fatal {
        return Err(HostProblem::Failed(text));
    }
    let Some(out) = out else {
        // read back from the host's record
        if summary.value.failed == 0 && !ended {
            return Err(HostProblem::Failed(
                "the connection was lost and the apply did not record its end on the host".into(),
            ));
        }
        return Ok(());
    };
    if summary.value.failed == 0 && out.exit_status != Some(0) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(HostProblem::Failed(format!(
            "apply script exited with {:?}: {}",
            out.exit_status,
            stderr.trim()
        )));
    }
    Ok(())
}

/// After a connection lost mid-apply: a new connection, which waits for the apply to end on
/// the host (it holds the host's lock until then) and reads what it recorded.
async fn read_recorded_outcome(
    job: &HostJob,
    opts: &RunOptions,
    planned_at: u64,
) -> Result<String, String> {
    let session = opts
        .connector
        .connect(&job.host.name)
        .await
        .map_err(|e| e.to_string())?;
    let out = session
        .run_script(&script::record_script(), &mut |_| {})
        .await;
    session.close().await;
    let out = out.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    script::read_record(&text, planned_at)
        .map(|lines| lines.join("\n"))
        .ok_or_else(|| "the host holds no record of this apply".to_string())
}

/// Instances with nothing to do count as one "ok" each, like Ansible's ok tasks.
fn report_converged_instances(
    job: &HostJob,
    plan: &Plan,
    reporter: &dyn Reporter,
    summary: &mut ApplyOutcome,
) {
    for inst in &job.desired.instances {
        let touched = plan
            .steps
            .iter()
            .any(|s| s.instance.as_ref() == Some(&inst.name))
            || plan.refusals.iter().any(|r| r.instance == inst.name);
        if !touched {
            step_event(
                reporter,
                summary,
                format!("{}: in desired state", inst.name),
                StepStatus::Ok,
                None,
                None,
            );
        }
    }
}
