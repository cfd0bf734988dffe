//! Plain output for logs and pipes: one line per event, `HOST | STATUS | STEP | MESSAGE`,
//! diffs indented under their step, the recap at the end.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::style::{paint, Colour};
use super::{human_duration, recap, ApplyOutcome, Event, Reporter};

/// Indentation of diff lines under their step.
const DIFF_INDENT: &str = "    ";

pub struct PlainReporter {
    out: Mutex<Box<dyn Write + Send>>,
    show_diff: bool,
    verbosity: u8,
    colour: bool,
}

impl PlainReporter {
    /// Writes to `out` (stdout in the tool). `verbosity` 1 or more adds host phase lines;
    /// `colour` paints the status words.
    pub fn new(out: Box<dyn Write + Send>, show_diff: bool, verbosity: u8, colour: bool) -> Self {
        PlainReporter {
            out: Mutex::new(out),
            show_diff,
            verbosity,
            colour,
        }
    }

    fn write(&self, text: &str) {
        // A closed stdout (`| head`) must not stop the run: the hosts still converge and the
        // exit code still tells the outcome.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

impl Reporter for PlainReporter {
    fn event(&self, event: &Event) {
        if let Some(text) = event_lines(event, self.show_diff, self.verbosity, self.colour) {
            self.write(&text);
        }
    }

    fn finish(&self, summaries: &[ApplyOutcome], elapsed: Duration) {
        self.write(&format!(
            "\n{}",
            recap::render(summaries, elapsed, self.colour)
        ));
    }
}

/// The line(s) for one event, each ending in a newline; `None` for events not shown at this
/// verbosity.
pub fn event_lines(event: &Event, show_diff: bool, verbosity: u8, colour: bool) -> Option<String> {
    match event {
        Event::RunStarted { hosts, check } => {
            let (mode, note) = if *check {
                ("check", ", nothing will be changed")
            } else {
                ("apply", "")
            };
            let hosts_word = if *hosts == 1 { "host" } else { "hosts" };
            Some(format!("* | START | {mode} | {hosts} {hosts_word}{note}\n"))
        }
        Event::BatchStart {
            index,
            batches,
            hosts,
        } => Some(format!(
            "* | BATCH {index}/{batches} | {} | {}\n",
            host_list(hosts),
            if hosts.len() == 1 {
                "1 host".to_string()
            } else {
                format!("{} hosts", hosts.len())
            }
        )),
        Event::BatchEnd {
            index,
            batches,
            failed,
        } => (verbosity > 0 || *failed > 0)
            .then(|| format!("* | BATCH {index}/{batches} DONE | {failed} failed | -\n")),
        Event::RolloutStopped {
            reason,
            not_attempted,
        } => Some(format!(
            "* | {} | {} | not attempted: {}\n",
            paint("STOPPED", Colour::Red, colour),
            one_line(reason),
            host_list(not_attempted)
        )),
        Event::HostPhase { host, phase } => {
            (verbosity > 0).then(|| format!("{host} | PHASE | {} | -\n", one_line(phase)))
        }
        Event::Drift { host, drift } => Some(format!(
            "{host} | {} | {}: {} | {}\n",
            paint("DRIFT", Colour::Yellow, colour),
            drift.instance,
            one_line(&drift.key.describe()),
            one_line(&drift.message(host))
        )),
        Event::Step {
            host,
            name,
            status,
            message,
            diff,
        } => {
            let word = paint(
                &status.as_str().to_uppercase(),
                Colour::of_step(*status),
                colour,
            );
            let message = message.as_deref().map_or("-".to_string(), one_line);
            let mut text = format!("{host} | {word} | {} | {message}\n", one_line(name));
            if show_diff {
                if let Some(diff) = diff.as_deref().filter(|diff| !diff.is_empty()) {
                    text.push_str(&indent(diff));
                }
            }
            Some(text)
        }
        Event::HostDone { summary } => {
            let outcome = summary.verdict();
            let word = paint(
                &outcome.as_str().to_uppercase(),
                Colour::of_host(outcome),
                colour,
            );
            let mut message = format!(
                "ok={} changed={} failed={} round_trips={} duration={}",
                summary.value.ok,
                summary.value.changed,
                summary.failures(),
                summary.value.round_trips,
                human_duration(summary.value.duration)
            );
            if summary.value.drift > 0 {
                message.push_str(&format!(" drift={}", summary.value.drift));
            }
            if let Some(error) = summary.error() {
                message.push_str("; error: ");
                message.push_str(&one_line(error));
            }
            Some(format!(
                "{} | {word} | host done | {message}\n",
                summary.host
            ))
        }
    }
}

/// Multi-line text (Postfix's own error output) on one line, so each event stays one line.
fn one_line(text: &str) -> String {
    text.trim()
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn indent(block: &str) -> String {
    let mut out = String::new();
    for line in block.lines() {
        out.push_str(DIFF_INDENT);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Host names for one line: all of them up to 20, then how many more.
pub fn host_list(hosts: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = hosts
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > SHOWN {
        text.push_str(&format!(" and {} more", hosts.len() - SHOWN));
    }
    if text.is_empty() {
        text.push('-');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::SharedBuf;
    use crate::report::StepStatus;
    use postfleet_core::outcome::ApplyTally;
    use postfleet_core::outcome::HostProblem;

    fn step(status: StepStatus, message: Option<&str>, diff: Option<&str>) -> Event {
        Event::Step {
            host: "mx1".into(),
            name: "postfix-newsletter: write /etc/postfix-newsletter/main.cf".into(),
            status,
            message: message.map(String::from),
            diff: diff.map(String::from),
        }
    }

    #[test]
    fn step_lines_have_four_fields() {
        assert_eq!(
            event_lines(
                &step(StepStatus::Changed, Some("written"), None),
                false,
                0,
                false
            )
            .unwrap(),
            "mx1 | CHANGED | postfix-newsletter: write /etc/postfix-newsletter/main.cf | written\n"
        );
        assert_eq!(
            event_lines(&step(StepStatus::Ok, None, None), false, 0, false).unwrap(),
            "mx1 | OK | postfix-newsletter: write /etc/postfix-newsletter/main.cf | -\n"
        );
    }

    #[test]
    fn multi_line_messages_stay_on_one_line() {
        let event = step(
            StepStatus::Failed,
            Some("postfix/postfix-script: fatal: bad\n\nrestored previous files\n"),
            None,
        );
        let text = event_lines(&event, false, 0, false).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("mx1 | FAILED | "), "{text}");
        assert!(
            text.ends_with(" | postfix/postfix-script: fatal: bad; restored previous files\n"),
            "{text}"
        );
    }

    #[test]
    fn diffs_are_indented_under_their_step_only_with_show_diff() {
        let diff = "--- f (current)\n+++ f (desired)\n@@ -1 +1 @@\n-a\n+b\n";
        let event = step(StepStatus::Changed, None, Some(diff));
        let without = event_lines(&event, false, 0, false).unwrap();
        assert_eq!(without.lines().count(), 1);
        let with = event_lines(&event, true, 0, false).unwrap();
        let lines: Vec<&str> = with.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].starts_with("mx1 | CHANGED |"));
        assert_eq!(lines[1], "    --- f (current)");
        assert_eq!(lines[5], "    +b");
    }

    #[test]
    fn start_phase_and_host_done_lines() {
        let start = Event::RunStarted {
            hosts: 8,
            check: true,
        };
        assert_eq!(
            event_lines(&start, false, 0, false).unwrap(),
            "* | START | check | 8 hosts, nothing will be changed\n"
        );
        let phase = Event::HostPhase {
            host: "mx1".into(),
            phase: "gathering facts".into(),
        };
        assert_eq!(event_lines(&phase, false, 0, false), None);
        assert_eq!(
            event_lines(&phase, false, 1, false).unwrap(),
            "mx1 | PHASE | gathering facts | -\n"
        );
        let done = Event::HostDone {
            summary: ApplyOutcome {
                value: ApplyTally {
                    duration: Duration::from_secs(10),
                    ..Default::default()
                },
                host: "mx3".into(),
                problem: Some(HostProblem::Unreachable(
                    "connect to 10.0.0.3:22: connection refused".into(),
                )),
            },
        };
        assert_eq!(
            event_lines(&done, false, 0, false).unwrap(),
            "mx3 | UNREACHABLE | host done | ok=0 changed=0 failed=0 round_trips=0 \
             duration=10.0s; error: connect to 10.0.0.3:22: connection refused\n"
        );
    }

    #[test]
    fn colour_paints_only_the_status_word() {
        let text = event_lines(&step(StepStatus::Failed, None, None), false, 0, true).unwrap();
        assert!(text.starts_with("mx1 | \x1b[31mFAILED\x1b[0m | postfix-newsletter"));
    }

    #[test]
    fn reporter_writes_events_then_the_recap() {
        let buf = SharedBuf::default();
        let reporter = PlainReporter::new(Box::new(buf.clone()), false, 0, false);
        reporter.event(&Event::RunStarted {
            hosts: 1,
            check: false,
        });
        reporter.event(&step(StepStatus::Changed, None, None));
        let summary = ApplyOutcome {
            value: ApplyTally {
                changed: 1,
                ..Default::default()
            },
            host: "mx1".into(),
            ..Default::default()
        };
        reporter.event(&Event::HostDone {
            summary: summary.clone(),
        });
        reporter.finish(&[summary], Duration::from_secs(1));
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "* | START | apply | 1 host");
        assert!(lines[1].starts_with("mx1 | CHANGED | "));
        assert!(lines[2].starts_with("mx1 | CHANGED | host done | ok=0 changed=1"));
        assert_eq!(lines[3], "");
        let header: Vec<&str> = lines[4].split_whitespace().take(3).collect();
        assert_eq!(header, ["HOST", "OK", "CHANGED"]);
        assert!(lines[5].starts_with("mx1 "));
        assert!(lines.last().unwrap().starts_with("total: 1 host"));
    }
}
