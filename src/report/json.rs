//! JSON lines for machines (`--json`): a `start` object, one `step` object per host step, one
//! `host` object per finished host, and a `summary` object as the last line.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::{ApplyOutcome, Event, Reporter, StepStatus, Timings};

pub struct JsonReporter {
    out: Mutex<Box<dyn Write + Send>>,
    show_diff: bool,
    /// Check mode (from the run's start event): how the host lines word their standing.
    check: std::sync::atomic::AtomicBool,
}

impl JsonReporter {
    /// Writes to `out` (stdout in the tool). Diffs are included only with `show_diff`.
    pub fn new(out: Box<dyn Write + Send>, show_diff: bool) -> Self {
        JsonReporter {
            out: Mutex::new(out),
            show_diff,
            check: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn write_line(&self, value: &impl Serialize) {
        let mut line = serde_json::to_string(value).expect("report objects serialize");
        line.push('\n');
        // A closed stdout must not stop the run; the exit code still tells the outcome.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Start {
        hosts: usize,
        check: bool,
    },
    Step {
        host: &'a str,
        step: &'a str,
        status: StepStatus,
        message: Option<&'a str>,
        diff: Option<&'a str>,
    },
    BatchStart {
        batch: usize,
        of: usize,
        hosts: &'a [String],
    },
    BatchEnd {
        batch: usize,
        of: usize,
        failed: usize,
    },
    Stopped {
        reason: &'a str,
        not_attempted: &'a [String],
    },
    /// A setting changed outside postfleet since its last apply on the host.
    Drift {
        host: &'a str,
        instance: &'a str,
        setting: String,
        was: String,
        now: String,
        /// The last apply: when (UTC), which run (the host's apply count), by whom.
        since: String,
        run: u64,
        by: &'a str,
        message: String,
    },
    Host {
        host: &'a str,
        #[serde(flatten)]
        counts: HostCounts<'a>,
    },
    Summary {
        /// How the run stands: `in sync`, `drift fixed`, `changed`, `failed` (check mode:
        /// `drifted`, `would change`).
        status: &'static str,
        hosts: BTreeMap<&'a str, HostCounts<'a>>,
        totals: Totals,
        #[serde(serialize_with = "postfleet_core::outcome::ser_secs")]
        elapsed: Duration,
    },
}

#[derive(Serialize)]
struct HostCounts<'a> {
    status: &'static str,
    ok: u32,
    changed: u32,
    failed: u32,
    drift: u32,
    unreachable: bool,
    #[serde(serialize_with = "postfleet_core::outcome::ser_secs")]
    duration: Duration,
    round_trips: u32,
    timings: &'a Timings,
    error: Option<&'a str>,
    /// The rollout stopped before the host's batch.
    not_attempted: bool,
    /// The host's batch (from 1), when the run had several.
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<usize>,
}

impl<'a> HostCounts<'a> {
    fn of(s: &'a ApplyOutcome, check: bool) -> HostCounts<'a> {
        HostCounts {
            status: s.standing(check),
            ok: s.value.ok,
            changed: s.value.changed,
            failed: s.failures(),
            drift: s.value.drift,
            unreachable: s.unreachable(),
            duration: s.value.duration,
            round_trips: s.value.round_trips,
            timings: &s.value.timings,
            error: s.error(),
            not_attempted: s.verdict() == postfleet_core::outcome::Verdict::NotAttempted,
            batch: (s.value.batch > 0).then_some(s.value.batch),
        }
    }
}

#[derive(Serialize)]
struct Totals {
    hosts: usize,
    ok: u32,
    changed: u32,
    failed: u32,
    drift: u32,
    /// Hosts, not steps.
    unreachable: usize,
}

impl Reporter for JsonReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::RunStarted { hosts, check } => {
                self.check
                    .store(*check, std::sync::atomic::Ordering::Relaxed);
                self.write_line(&Line::Start {
                    hosts: *hosts,
                    check: *check,
                })
            }
            Event::Drift { host, drift } => self.write_line(&Line::Drift {
                host,
                instance: drift.instance.as_str(),
                setting: drift.key.describe(),
                was: drift.was_shown(),
                now: drift.now_shown(),
                since: postfleet_core::drift::utc(drift.since),
                run: drift.generation,
                by: &drift.by,
                message: drift.message(host),
            }),
            // Phases are for watching people; machines get the results.
            Event::HostPhase { .. } => {}
            Event::Step {
                host,
                name,
                status,
                message,
                diff,
            } => self.write_line(&Line::Step {
                host,
                step: name,
                status: *status,
                message: message.as_deref(),
                diff: diff.as_deref().filter(|_| self.show_diff),
            }),
            Event::BatchStart {
                index,
                batches,
                hosts,
            } => self.write_line(&Line::BatchStart {
                batch: *index,
                of: *batches,
                hosts,
            }),
            Event::BatchEnd {
                index,
                batches,
                failed,
            } => self.write_line(&Line::BatchEnd {
                batch: *index,
                of: *batches,
                failed: *failed,
            }),
            Event::RolloutStopped {
                reason,
                not_attempted,
            } => self.write_line(&Line::Stopped {
                reason,
                not_attempted,
            }),
            Event::HostDone { summary } => self.write_line(&Line::Host {
                host: &summary.host,
                counts: HostCounts::of(summary, self.check()),
            }),
        }
    }

    fn finish(&self, summaries: &[ApplyOutcome], elapsed: Duration) {
        self.write_line(&summary_line(summaries, elapsed, self.check()));
    }
}

impl JsonReporter {
    fn check(&self) -> bool {
        self.check.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn summary_line(summaries: &[ApplyOutcome], elapsed: Duration, check: bool) -> Line<'_> {
    let hosts = summaries
        .iter()
        .map(|s| (s.host.as_str(), HostCounts::of(s, check)))
        .collect();
    let totals = Totals {
        hosts: summaries.len(),
        ok: summaries.iter().map(|s| s.value.ok).sum(),
        changed: summaries.iter().map(|s| s.value.changed).sum(),
        failed: summaries.iter().map(|s| s.failures()).sum(),
        drift: summaries.iter().map(|s| s.value.drift).sum(),
        unreachable: summaries.iter().filter(|s| s.unreachable()).count(),
    };
    Line::Summary {
        status: postfleet_core::outcome::run_standing(summaries, check),
        hosts,
        totals,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::SharedBuf;
    use postfleet_core::outcome::ApplyTally;
    use postfleet_core::outcome::HostProblem;
    use serde_json::{json, Value};

    fn run(show_diff: bool) -> Vec<Value> {
        let buf = SharedBuf::default();
        let reporter = JsonReporter::new(Box::new(buf.clone()), show_diff);
        let ok = ApplyOutcome {
            value: ApplyTally {
                ok: 5,
                changed: 1,
                round_trips: 3,
                duration: Duration::from_millis(1234),
                timings: Timings {
                    connect: Duration::from_millis(100),
                    facts: Duration::from_millis(200),
                    plan: Duration::from_millis(1),
                    apply: Duration::from_millis(900),
                },
                ..Default::default()
            },
            host: "mx1".into(),
            ..Default::default()
        };
        let down = ApplyOutcome {
            value: ApplyTally {
                duration: Duration::from_secs(10),
                ..Default::default()
            },
            host: "mx2".into(),
            problem: Some(HostProblem::Unreachable(
                "connect to 10.0.0.2:22: timed out".into(),
            )),
        };
        reporter.event(&Event::RunStarted {
            hosts: 2,
            check: false,
        });
        reporter.event(&Event::HostPhase {
            host: "mx1".into(),
            phase: "connecting".into(),
        });
        reporter.event(&Event::Step {
            host: "mx1".into(),
            name: "postfix-newsletter: write main.cf".into(),
            status: StepStatus::Changed,
            message: Some("written".into()),
            diff: Some("--- a\n+++ b\n".into()),
        });
        reporter.event(&Event::HostDone {
            summary: ok.clone(),
        });
        reporter.event(&Event::HostDone {
            summary: down.clone(),
        });
        reporter.finish(&[ok, down], Duration::from_millis(10_500));
        buf.text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is JSON"))
            .collect()
    }

    #[test]
    fn one_object_per_line_with_the_summary_last() {
        let lines = run(true);
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["start", "step", "host", "host", "summary"]);
        assert_eq!(
            lines[0],
            json!({"type": "start", "hosts": 2, "check": false})
        );
    }

    #[test]
    fn step_objects_carry_host_step_status_message_and_diff() {
        let with_diff = run(true);
        assert_eq!(
            with_diff[1],
            json!({
                "type": "step",
                "host": "mx1",
                "step": "postfix-newsletter: write main.cf",
                "status": "changed",
                "message": "written",
                "diff": "--- a\n+++ b\n",
            })
        );
        assert_eq!(run(false)[1]["diff"], Value::Null);
    }

    #[test]
    fn host_objects_carry_the_summary_fields() {
        let lines = run(false);
        let host = &lines[2];
        assert_eq!(host["host"], "mx1");
        assert_eq!(host["ok"], 5);
        assert_eq!(host["changed"], 1);
        assert_eq!(host["failed"], 0);
        assert_eq!(host["unreachable"], false);
        assert_eq!(host["round_trips"], 3);
        assert_eq!(host["duration"], 1.234);
        assert_eq!(host["timings"]["apply"], 0.9);
        assert_eq!(host["error"], Value::Null);
        assert_eq!(lines[3]["error"], "connect to 10.0.0.2:22: timed out");
    }

    #[test]
    fn summary_has_per_host_counts_and_totals() {
        let lines = run(false);
        let summary = lines.last().unwrap();
        assert_eq!(summary["type"], "summary");
        assert_eq!(
            summary["hosts"]["mx1"],
            json!({
                "status": "changed", "drift": 0,
                "ok": 5, "changed": 1, "failed": 0, "unreachable": false,
                "not_attempted": false, "duration": 1.234, "round_trips": 3,
                "timings": {"connect": 0.1, "facts": 0.2, "plan": 0.001, "apply": 0.9},
                "error": null,
            })
        );
        assert_eq!(summary["hosts"]["mx2"]["unreachable"], true);
        assert_eq!(
            summary["totals"],
            json!({"hosts": 2, "ok": 5, "changed": 1, "failed": 0, "drift": 0, "unreachable": 1})
        );
        // a host that could not be reached fails the run
        assert_eq!(summary["status"], "failed");
        assert_eq!(summary["hosts"]["mx2"]["status"], "unreachable");
        assert_eq!(summary["elapsed"], 10.5);
    }

    #[test]
    fn drift_lines_say_what_changed_since_when_and_the_summary_counts_them() {
        use postfleet_core::drift::{Drift, Key, Value as Was};
        let buf = SharedBuf::default();
        let reporter = JsonReporter::new(Box::new(buf.clone()), false);
        let drift = Drift {
            instance: postfleet_core::model::InstanceName::default_instance(),
            key: Key::Param("relayhost".into()),
            was: Was::Shown("[a]:25".into()),
            now: Was::Shown("[b]:25".into()),
            since: 0,
            generation: 4,
            by: "root@bastion".into(),
        };
        reporter.event(&Event::Drift {
            host: "mx03".into(),
            drift,
        });
        let fixed = ApplyOutcome {
            host: "mx03".into(),
            value: ApplyTally {
                changed: 2,
                drift: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        reporter.finish(&[fixed], Duration::from_secs(1));
        let lines: Vec<Value> = buf
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "drift");
        assert_eq!(lines[0]["setting"], "main.cf `relayhost`");
        assert_eq!(lines[0]["was"], "[a]:25");
        assert_eq!(lines[0]["now"], "[b]:25");
        assert_eq!(lines[0]["since"], "1970-01-01 00:00:00 UTC");
        assert_eq!(lines[0]["run"], 4);
        assert!(lines[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("main.cf `relayhost` on mx03 changed outside postfleet"));
        assert_eq!(lines[1]["status"], "drift fixed");
        assert_eq!(lines[1]["totals"]["drift"], 1);
    }
}
