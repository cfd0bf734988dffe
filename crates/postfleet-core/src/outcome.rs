//! How work on one host ended, for apply and fleet operations alike.

use std::time::Duration;

use crate::exit::Exit;

/// Why a host has no result: it could not be reached (connect, host key, auth, a lost
/// connection), or something on it failed. Unreachable hosts exit 3, failed ones 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProblem {
    Unreachable(String),
    Failed(String),
    /// Never started: the rollout stopped before its batch (the reason says why).
    NotAttempted(String),
}

impl HostProblem {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HostProblem::Unreachable(_))
    }

    /// The reason, without the "unreachable:" prefix.
    pub fn reason(&self) -> &str {
        match self {
            HostProblem::Unreachable(e) | HostProblem::Failed(e) | HostProblem::NotAttempted(e) => {
                e
            }
        }
    }
}

impl std::fmt::Display for HostProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostProblem::Unreachable(e) => write!(f, "unreachable: {e}"),
            HostProblem::Failed(e) => write!(f, "{e}"),
            HostProblem::NotAttempted(e) => write!(f, "not attempted: {e}"),
        }
    }
}

/// How work on one host ended, for `apply` and the fleet operations alike: what it gave, and
/// why it stopped short, if it did. For `apply` the value is the [`ApplyTally`] of the steps,
/// which counts even when the host then failed (a lost connection after three steps); for an
/// operation it is the host's rows, empty when there is a problem.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostOutcome<T> {
    pub host: String,
    pub value: T,
    pub problem: Option<HostProblem>,
}

impl<T: Default> HostOutcome<T> {
    /// A host with nothing to show yet.
    pub fn new(host: impl Into<String>) -> HostOutcome<T> {
        HostOutcome {
            host: host.into(),
            value: T::default(),
            problem: None,
        }
    }

    /// A host that gave `value`, or a problem and nothing.
    pub fn of(host: impl Into<String>, result: Result<T, HostProblem>) -> HostOutcome<T> {
        match result {
            Ok(value) => HostOutcome {
                host: host.into(),
                value,
                problem: None,
            },
            Err(problem) => HostOutcome::stopped(host, problem),
        }
    }

    /// A host that gave nothing, because of `problem`.
    pub fn stopped(host: impl Into<String>, problem: HostProblem) -> HostOutcome<T> {
        HostOutcome {
            problem: Some(problem),
            ..HostOutcome::new(host)
        }
    }
}

impl<T> HostOutcome<T> {
    pub fn unreachable(&self) -> bool {
        self.problem
            .as_ref()
            .is_some_and(HostProblem::is_unreachable)
    }

    /// The reason the host failed or was unreachable.
    pub fn error(&self) -> Option<&str> {
        self.problem.as_ref().map(HostProblem::reason)
    }

    /// Failures as a recap counts them: the failed steps, or the host itself once when it
    /// failed outside any step (e.g. its facts could not be read).
    fn failures_with(&self, failed_steps: u32) -> u32 {
        match &self.problem {
            Some(HostProblem::Failed(_)) => failed_steps.max(1),
            _ => failed_steps,
        }
    }
}

/// The exit code of a fleet-wide command: 2 when a host failed, else 3 when one could not be
/// reached, else 0. `failed_steps` counts the failures a host's value holds.
pub fn fleet_exit<T>(outcomes: &[HostOutcome<T>], failed_steps: impl Fn(&T) -> u32) -> Exit {
    if outcomes
        .iter()
        .any(|o| o.failures_with(failed_steps(&o.value)) > 0)
    {
        Exit::HostFailed
    } else if outcomes.iter().any(HostOutcome::unreachable) {
        Exit::Unreachable
    } else {
        Exit::Success
    }
}

/// What `apply` did on one host: step counts, round trips and time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyTally {
    /// The host's batch of the rollout, from 1; 0 when the run had one batch.
    pub batch: usize,
    pub ok: u32,
    pub changed: u32,
    /// Steps that failed.
    pub failed: u32,
    /// Settings found changed outside postfleet since its last apply (see `drift`).
    pub drift: u32,
    /// SSH commands (channel round trips) this run used on the host.
    pub round_trips: u32,
    pub duration: Duration,
    /// Phase timings: connect, facts, plan, apply.
    pub timings: Timings,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    #[serde(serialize_with = "ser_secs")]
    pub connect: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub facts: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub plan: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub apply: Duration,
}

/// Serializes a duration as seconds, to the millisecond (JSON output).
pub fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// How one host's apply ended.
pub type ApplyOutcome = HostOutcome<ApplyTally>;

impl ApplyOutcome {
    /// One word for how the host ended, worst first: unreachable, failed, changed, ok.
    pub fn verdict(&self) -> Verdict {
        if matches!(self.problem, Some(HostProblem::NotAttempted(_))) {
            Verdict::NotAttempted
        } else if self.unreachable() {
            Verdict::Unreachable
        } else if self.value.failed > 0 || self.problem.is_some() {
            Verdict::Failed
        } else if self.value.changed > 0 {
            Verdict::Changed
        } else {
            Verdict::Ok
        }
    }

    /// Failures as the recap counts them.
    pub fn failures(&self) -> u32 {
        self.failures_with(self.value.failed)
    }

    /// How the host stands after the run, in the words a scheduled run's log uses: `in
    /// sync`, `drift fixed` (changed, and something had been changed outside postfleet),
    /// `changed`, or how it failed; with `check`, `drifted` and `would change` instead.
    pub fn standing(&self, check: bool) -> &'static str {
        match (self.verdict(), self.value.drift > 0, check) {
            (Verdict::NotAttempted, ..) => "not attempted",
            (Verdict::Unreachable, ..) => "unreachable",
            (Verdict::Failed, ..) => "failed",
            (Verdict::Changed, true, false) => "drift fixed",
            (Verdict::Changed, false, false) => "changed",
            (_, true, true) => "drifted",
            (Verdict::Changed, false, true) => "would change",
            (Verdict::Ok, ..) => "in sync",
        }
    }
}

/// How a whole run stands: the worst of its hosts (failed, unreachable or not attempted
/// hosts make it `failed`), else `drift fixed`, `changed` or `in sync` (with `check`:
/// `drifted`, `would change`).
pub fn run_standing(outcomes: &[ApplyOutcome], check: bool) -> &'static str {
    let words: Vec<&str> = outcomes.iter().map(|o| o.standing(check)).collect();
    let any = |w: &str| words.contains(&w);
    if any("failed") || any("unreachable") || any("not attempted") {
        "failed"
    } else if any("drift fixed") {
        "drift fixed"
    } else if any("drifted") {
        "drifted"
    } else if any("changed") {
        "changed"
    } else if any("would change") {
        "would change"
    } else {
        "in sync"
    }
}

/// How a host ended, as shown on host-done lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Changed,
    Failed,
    Unreachable,
    /// The rollout stopped before the host's batch.
    NotAttempted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Changed => "changed",
            Verdict::Failed => "failed",
            Verdict::Unreachable => "unreachable",
            Verdict::NotAttempted => "not attempted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failed: u32, problem: Option<HostProblem>) -> ApplyOutcome {
        HostOutcome {
            host: "h".into(),
            value: ApplyTally {
                failed,
                ..Default::default()
            },
            problem,
        }
    }

    /// Every standing a host can have, and the run's: the worst host's, drift before
    /// changes.
    #[test]
    fn standings_say_how_a_host_and_the_run_ended() {
        let host =
            |changed: u32, drift: u32, failed: u32, problem: Option<HostProblem>| HostOutcome {
                host: "h".into(),
                value: ApplyTally {
                    changed,
                    drift,
                    failed,
                    ..Default::default()
                },
                problem,
            };
        let unreachable = || Some(HostProblem::Unreachable("x".into()));
        for (outcome, apply, check) in [
            (host(0, 0, 0, None), "in sync", "in sync"),
            (host(2, 0, 0, None), "changed", "would change"),
            (host(2, 1, 0, None), "drift fixed", "drifted"),
            // drift that matches the playbook: recorded, nothing to put right
            (host(0, 1, 0, None), "in sync", "drifted"),
            (host(2, 1, 1, None), "failed", "failed"),
            (host(0, 0, 0, unreachable()), "unreachable", "unreachable"),
        ] {
            assert_eq!(outcome.standing(false), apply, "{outcome:?}");
            assert_eq!(outcome.standing(true), check, "{outcome:?}");
        }
        let run = |hosts: &[ApplyOutcome]| (run_standing(hosts, false), run_standing(hosts, true));
        assert_eq!(run(&[]), ("in sync", "in sync"));
        assert_eq!(
            run(&[host(0, 0, 0, None), host(1, 0, 0, None)]),
            ("changed", "would change")
        );
        assert_eq!(
            run(&[host(1, 0, 0, None), host(1, 1, 0, None)]),
            ("drift fixed", "drifted")
        );
        assert_eq!(
            run(&[host(1, 1, 0, None), host(0, 0, 0, unreachable())]),
            ("failed", "failed")
        );
    }

    #[test]
    fn a_host_that_failed_outside_any_step_counts_once() {
        assert_eq!(
            outcome(0, Some(HostProblem::Failed("x".into()))).failures(),
            1
        );
        assert_eq!(
            outcome(2, Some(HostProblem::Failed("x".into()))).failures(),
            2
        );
        assert_eq!(
            outcome(0, Some(HostProblem::Unreachable("x".into()))).failures(),
            0
        );
    }

    #[test]
    fn a_host_outcome_reports_the_worst_thing() {
        let mut outcome = outcome(0, None);
        outcome.value.ok = 3;
        assert_eq!(outcome.verdict(), Verdict::Ok);
        outcome.value.changed = 1;
        assert_eq!(outcome.verdict(), Verdict::Changed);
        outcome.problem = Some(HostProblem::Failed("postconf: warning".into()));
        assert_eq!(outcome.verdict(), Verdict::Failed);
        outcome.problem = Some(HostProblem::Unreachable("gone".into()));
        assert_eq!(outcome.verdict(), Verdict::Unreachable);
    }

    #[test]
    fn failed_beats_unreachable_beats_success() {
        let down = outcome(0, Some(HostProblem::Unreachable("x".into())));
        let failed = outcome(1, None);
        let fine = outcome(0, None);
        let steps = |t: &ApplyTally| t.failed;
        assert_eq!(
            fleet_exit(&[down.clone(), failed, fine.clone()], steps),
            Exit::HostFailed
        );
        assert_eq!(fleet_exit(&[down, fine.clone()], steps), Exit::Unreachable);
        assert_eq!(fleet_exit(&[fine], steps), Exit::Success);
        let rows: [HostOutcome<Vec<u8>>; 1] =
            [HostOutcome::stopped("h", HostProblem::Failed("x".into()))];
        assert_eq!(fleet_exit(&rows, |_| 0), Exit::HostFailed);
    }
}
