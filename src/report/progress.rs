//! Progress on a terminal: an overall bar (hosts done, elapsed, hosts changed/failed/unreachable)
//! and one spinner line per host in progress (a few at most, then "+N more"), on stderr; the results that matter (changed and failed steps, diffs,
//! failed hosts) printed above the bars so nothing is garbled; the recap on stdout at the end.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::style::{paint, Colour};
use super::{human_duration, recap, ApplyOutcome, Event, Reporter, StepStatus, Verdict};

/// Host lines shown at once; more hosts in progress are counted on a "+N more" line, so a
/// fleet of 500 does not flood the screen.
pub const MAX_HOST_LINES: usize = 10;

/// How often spinners and the elapsed time move.
const TICK: Duration = Duration::from_millis(120);

pub struct ProgressReporter {
    multi: MultiProgress,
    state: Mutex<State>,
    show_diff: bool,
    verbosity: u8,
    colour: bool,
}

struct Waiting {
    since: Instant,
    phase: String,
}

#[derive(Default)]
struct State {
    overall: Option<ProgressBar>,
    /// Hosts in progress that have a line: the line and the host's current phase.
    shown: HashMap<String, (ProgressBar, String)>,
    /// Hosts in progress without a line. A host gets a line, oldest first, when a shown one
    /// finishes.
    waiting: HashMap<String, Waiting>,
    /// Arrival order of waiting hosts; hosts that finished while waiting are skipped when
    /// popped (cheaper than removing them from the middle).
    waiting_order: VecDeque<String>,
    more: Option<ProgressBar>,
    /// Finished hosts by outcome, shown on the overall bar (hosts, like its position).
    changed_hosts: u32,
    failed_hosts: u32,
    unreachable_hosts: u32,
}

impl ProgressReporter {
    /// Draws on stderr. `verbosity` 1 or more also prints unchanged steps and every finished
    /// host above the bars; `colour` paints statuses and diffs.
    pub fn new(show_diff: bool, verbosity: u8, colour: bool) -> Self {
        ProgressReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            state: Mutex::new(State::default()),
            show_diff,
            verbosity,
            colour,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // `wide_msg` cuts the message at the terminal's width: a wrapped line would take two rows
    // and push the display off a short terminal.
    fn overall_style(&self) -> ProgressStyle {
        let template = if self.colour {
            "{spinner:.green} {prefix:.bold} [{bar:12.cyan/blue}] {pos}/{len} hosts {elapsed_precise}  {wide_msg}"
        } else {
            "{spinner} {prefix} [{bar:12}] {pos}/{len} hosts {elapsed_precise}  {wide_msg}"
        };
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ")
    }

    fn host_style(&self) -> ProgressStyle {
        let template = if self.colour {
            "  {spinner:.cyan} {prefix:<20} {elapsed:>4} {wide_msg}"
        } else {
            "  {spinner} {prefix:<20} {elapsed:>4} {wide_msg}"
        };
        ProgressStyle::with_template(template).expect("valid template")
    }

    fn overall<'s>(&self, state: &'s mut State) -> &'s ProgressBar {
        state.overall.get_or_insert_with(|| {
            let bar = self
                .multi
                .insert(0, ProgressBar::new(0).with_style(self.overall_style()));
            bar.enable_steady_tick(TICK);
            bar
        })
    }

    fn update_counts(&self, state: &mut State) {
        let mut parts = vec![
            paint(
                &format!("{} changed", state.changed_hosts),
                Colour::Yellow,
                self.colour && state.changed_hosts > 0,
            ),
            paint(
                &format!("{} failed", state.failed_hosts),
                Colour::Red,
                self.colour && state.failed_hosts > 0,
            ),
        ];
        if state.unreachable_hosts > 0 {
            parts.push(paint(
                &format!("{} unreachable", state.unreachable_hosts),
                Colour::Red,
                self.colour,
            ));
        }
        self.overall(state).set_message(parts.join(", "));
    }

    /// A line for `host`, its clock starting at `since` (when the host started, which is
    /// earlier than now for a host that waited for a line).
    fn show_host(&self, state: &mut State, host: &str, phase: String, since: Instant) {
        let line = ProgressBar::new_spinner()
            .with_style(self.host_style())
            .with_prefix(host.to_string())
            .with_message(phase.clone())
            .with_elapsed(since.elapsed());
        // Host lines go above the "+N more" line, which stays last.
        let line = match &state.more {
            Some(more) => self.multi.insert_before(more, line),
            None => self.multi.add(line),
        };
        line.enable_steady_tick(TICK);
        state.shown.insert(host.to_string(), (line, phase));
    }

    fn host_phase(&self, state: &mut State, host: &str, phase: &str) {
        if let Some((line, current)) = state.shown.get_mut(host) {
            phase.clone_into(current);
            line.set_message(phase.to_string());
        } else if let Some(waiting) = state.waiting.get_mut(host) {
            phase.clone_into(&mut waiting.phase);
        } else if state.shown.len() < MAX_HOST_LINES {
            self.show_host(state, host, phase.to_string(), Instant::now());
        } else {
            let waiting = Waiting {
                since: Instant::now(),
                phase: phase.to_string(),
            };
            state.waiting.insert(host.to_string(), waiting);
            state.waiting_order.push_back(host.to_string());
            self.update_more(state);
        }
    }

    fn host_done(&self, state: &mut State, host: &str) {
        if let Some((line, _)) = state.shown.remove(host) {
            line.finish_and_clear();
            self.multi.remove(&line);
            while let Some(next) = state.waiting_order.pop_front() {
                if let Some(waiting) = state.waiting.remove(&next) {
                    self.show_host(state, &next, waiting.phase, waiting.since);
                    break;
                }
            }
        } else {
            state.waiting.remove(host);
        }
        self.update_more(state);
    }

    fn update_more(&self, state: &mut State) {
        let hidden = state.waiting.len();
        match (&state.more, hidden) {
            (Some(more), 0) => {
                more.finish_and_clear();
                self.multi.remove(more);
                state.more = None;
            }
            (Some(more), n) => more.set_message(more_text(n)),
            (None, 0) => {}
            (None, n) => {
                let style = ProgressStyle::with_template("  {msg}").expect("valid template");
                let more = self.multi.add(ProgressBar::new_spinner().with_style(style));
                more.set_message(more_text(n));
                state.more = Some(more);
            }
        }
    }

    /// Prints `text` (whole lines) above the bars. Not `MultiProgress::println`: it pads each
    /// line to the terminal's width instead of ending it, so text copied from the terminal
    /// (a diff) comes out as one long line.
    fn print_above(&self, text: &str) {
        self.multi.suspend(|| {
            // Ignored: a terminal that cannot be written to has no one to tell.
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        });
    }
}

fn more_text(hidden: usize) -> String {
    format!("+{hidden} more in progress")
}

impl Reporter for ProgressReporter {
    fn event(&self, event: &Event) {
        let mut state = self.state();
        match event {
            Event::RunStarted { hosts, check } => {
                let overall = self.overall(&mut state);
                overall.set_length(*hosts as u64);
                overall.set_prefix(if *check { "plan" } else { "apply" });
                self.update_counts(&mut state);
            }
            Event::HostPhase { host, phase } => self.host_phase(&mut state, host, phase),
            Event::BatchStart { .. }
            | Event::BatchEnd { .. }
            | Event::RolloutStopped { .. }
            | Event::Drift { .. } => {
                if let Some(text) =
                    super::plain::event_lines(event, false, self.verbosity, self.colour)
                {
                    self.print_above(&text);
                }
            }
            Event::Step {
                host,
                name,
                status,
                message,
                diff,
            } => {
                if let Some((line, phase)) = state.shown.get(host) {
                    line.set_message(format!("{phase}: {name}"));
                }
                let worth_printing = matches!(status, StepStatus::Changed | StepStatus::Failed)
                    || self.verbosity > 0;
                if worth_printing {
                    let diff = diff.as_deref().filter(|_| self.show_diff);
                    self.print_above(&step_text(
                        host,
                        name,
                        *status,
                        message.as_deref(),
                        diff,
                        self.colour,
                    ));
                }
            }
            Event::HostDone { summary } => {
                self.host_done(&mut state, &summary.host);
                let outcome = summary.verdict();
                match outcome {
                    Verdict::Ok | Verdict::NotAttempted => {}
                    Verdict::Changed => state.changed_hosts += 1,
                    Verdict::Failed => state.failed_hosts += 1,
                    Verdict::Unreachable => state.unreachable_hosts += 1,
                }
                self.overall(&mut state).inc(1);
                self.update_counts(&mut state);
                if matches!(outcome, Verdict::Failed | Verdict::Unreachable) || self.verbosity > 0 {
                    self.print_above(&host_text(summary, self.colour));
                }
            }
        }
    }

    fn finish(&self, summaries: &[ApplyOutcome], elapsed: Duration) {
        let mut state = self.state();
        for (_, (line, _)) in state.shown.drain() {
            line.finish_and_clear();
            self.multi.remove(&line);
        }
        state.waiting.clear();
        state.waiting_order.clear();
        self.update_more(&mut state);
        if let Some(overall) = state.overall.take() {
            overall.finish_and_clear();
            self.multi.remove(&overall);
        }
        let _ = self.multi.clear();
        let recap = format!("\n{}", recap::render(summaries, elapsed, self.colour));
        // Ignored: with stdout gone there is no one to show the recap to; the exit code stays.
        let _ = std::io::stdout().lock().write_all(recap.as_bytes());
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        self.multi.suspend(f);
    }
}

/// What is printed above the bars for a step: `changed [mx1] NAME — MESSAGE`, then the diff
/// indented, its lines coloured when `colour`.
pub fn step_text(
    host: &str,
    name: &str,
    status: StepStatus,
    message: Option<&str>,
    diff: Option<&str>,
    colour: bool,
) -> String {
    let word = paint(
        &format!("{:<7}", status.as_str()),
        Colour::of_step(status),
        colour,
    );
    let mut text = format!("{word} [{host}] {name}");
    if let Some(message) = message.filter(|m| !m.trim().is_empty()) {
        text.push_str(" — ");
        text.push_str(&message.trim().replace('\n', "\n        "));
    }
    text.push('\n');
    for line in diff.unwrap_or("").lines() {
        let is_header = line.starts_with("---") || line.starts_with("+++");
        let line_colour = match line.as_bytes().first() {
            _ if is_header => None,
            Some(b'+') => Some(Colour::Green),
            Some(b'-') => Some(Colour::Red),
            Some(b'@') => Some(Colour::Dim),
            _ => None,
        };
        text.push_str("    ");
        match line_colour {
            Some(c) => text.push_str(&paint(line, c, colour)),
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// What is printed above the bars when a host finishes: its outcome, counts and error.
pub fn host_text(summary: &ApplyOutcome, colour: bool) -> String {
    let outcome = summary.verdict();
    let word = paint(
        &format!("{:<7}", outcome.as_str()),
        Colour::of_host(outcome),
        colour,
    );
    let mut text = format!(
        "{word} [{}] done: {} ok, {} changed, {} failed in {}",
        summary.host,
        summary.value.ok,
        summary.value.changed,
        summary.failures(),
        human_duration(summary.value.duration)
    );
    if let Some(error) = summary.error() {
        text.push_str(" — ");
        text.push_str(&error.trim().replace('\n', "\n        "));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use postfleet_core::outcome::ApplyTally;
    use postfleet_core::outcome::HostProblem;

    #[test]
    fn step_text_names_status_host_step_and_message() {
        assert_eq!(
            step_text(
                "mx1",
                "postfix-newsletter: reload",
                StepStatus::Changed,
                Some("config changed"),
                None,
                false
            ),
            "changed [mx1] postfix-newsletter: reload — config changed\n"
        );
        assert_eq!(
            step_text("mx1", "x", StepStatus::Ok, None, None, false),
            "ok      [mx1] x\n"
        );
    }

    #[test]
    fn step_text_indents_and_colours_the_diff() {
        let diff = "--- f (current)\n+++ f (desired)\n@@ -1 +1 @@\n-a\n+b\n";
        let plain = step_text(
            "mx1",
            "write f",
            StepStatus::Changed,
            None,
            Some(diff),
            false,
        );
        assert_eq!(
            plain,
            "changed [mx1] write f\n    --- f (current)\n    +++ f (desired)\n    @@ -1 +1 @@\n    -a\n    +b\n"
        );
        let coloured = step_text(
            "mx1",
            "write f",
            StepStatus::Changed,
            None,
            Some(diff),
            true,
        );
        assert!(coloured.contains("    \x1b[31m-a\x1b[0m\n"), "{coloured}");
        assert!(coloured.contains("    \x1b[32m+b\x1b[0m\n"), "{coloured}");
        assert!(
            coloured.contains("    +++ f (desired)\n"),
            "headers stay plain"
        );
    }

    #[test]
    fn host_text_gives_counts_and_error() {
        let summary = ApplyOutcome {
            value: ApplyTally {
                duration: Duration::from_secs(10),
                ..Default::default()
            },
            host: "mx3".into(),
            problem: Some(HostProblem::Unreachable(
                "connect to 10.0.0.3:22: connection refused".into(),
            )),
        };
        assert_eq!(
            host_text(&summary, false),
            "unreachable [mx3] done: 0 ok, 0 changed, 0 failed in 10.0s — connect to 10.0.0.3:22: connection refused\n"
        );
    }

    fn hidden_reporter() -> ProgressReporter {
        ProgressReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            state: Mutex::new(State::default()),
            show_diff: false,
            verbosity: 0,
            colour: false,
        }
    }

    fn host_done_event(host: &str) -> Event {
        Event::HostDone {
            summary: ApplyOutcome {
                host: host.into(),
                ..Default::default()
            },
        }
    }

    /// A thousand hosts in progress at once still make MAX_HOST_LINES lines, and every line
    /// and waiting host is gone once they are done, whatever the order.
    #[test]
    fn a_thousand_hosts_keep_the_display_small() {
        let reporter = hidden_reporter();
        reporter.event(&Event::RunStarted {
            hosts: 1000,
            check: true,
        });
        for n in 0..1000 {
            let host = format!("mx{n}");
            for phase in ["connecting", "gathering facts", "applying"] {
                reporter.event(&Event::HostPhase {
                    host: host.clone(),
                    phase: phase.into(),
                });
            }
        }
        {
            let state = reporter.state();
            assert_eq!(state.shown.len(), MAX_HOST_LINES);
            assert_eq!(state.waiting.len(), 1000 - MAX_HOST_LINES);
        }
        // Finish in an order that mixes shown and waiting hosts.
        for n in (0..1000).rev().step_by(2).chain((0..1000).step_by(2)) {
            reporter.event(&host_done_event(&format!("mx{n}")));
            let state = reporter.state();
            let in_progress = state.shown.len() + state.waiting.len();
            assert!(state.shown.len() <= MAX_HOST_LINES);
            assert_eq!(state.shown.len(), in_progress.min(MAX_HOST_LINES));
        }
        let state = reporter.state();
        assert!(state.shown.is_empty() && state.waiting.is_empty() && state.more.is_none());
        assert_eq!(state.overall.as_ref().unwrap().position(), 1000);
    }

    #[test]
    fn overall_bar_counts_hosts_by_outcome() {
        let reporter = hidden_reporter();
        reporter.event(&Event::RunStarted {
            hosts: 4,
            check: false,
        });
        let summaries = [
            ApplyOutcome {
                value: ApplyTally {
                    ok: 3,
                    ..Default::default()
                },
                host: "a".into(),
                ..Default::default()
            },
            ApplyOutcome {
                value: ApplyTally {
                    changed: 2,
                    ..Default::default()
                },
                host: "b".into(),
                ..Default::default()
            },
            ApplyOutcome {
                value: ApplyTally {
                    changed: 1,
                    failed: 1,
                    ..Default::default()
                },
                host: "c".into(),
                ..Default::default()
            },
            ApplyOutcome {
                host: "d".into(),
                problem: Some(HostProblem::Unreachable("gone".into())),
                ..Default::default()
            },
        ];
        for summary in summaries {
            reporter.event(&Event::HostDone { summary });
        }
        let state = reporter.state();
        let overall = state.overall.as_ref().unwrap();
        assert_eq!(overall.position(), 4);
        assert_eq!(overall.length(), Some(4));
        assert_eq!(overall.message(), "1 changed, 1 failed, 1 unreachable");
    }

    /// The reporter keeps at most MAX_HOST_LINES host lines and promotes waiting hosts in
    /// arrival order; drawn to a hidden target so the test has no terminal.
    #[test]
    fn host_lines_are_capped_and_waiting_hosts_promoted_in_order() {
        let reporter = hidden_reporter();
        reporter.event(&Event::RunStarted {
            hosts: 13,
            check: false,
        });
        for n in 0..13 {
            reporter.event(&Event::HostPhase {
                host: format!("mx{n}"),
                phase: "connecting".into(),
            });
        }
        {
            let state = reporter.state();
            assert_eq!(state.shown.len(), MAX_HOST_LINES);
            assert_eq!(state.waiting.len(), 3);
            let more = state.more.as_ref().expect("a +N more line");
            assert_eq!(more.message(), "+3 more in progress");
        }
        // A waiting host finishing first leaves the queue; the next shown is mx11, not mx10.
        let done = host_done_event;
        reporter.event(&done("mx10"));
        reporter.event(&done("mx0"));
        {
            let state = reporter.state();
            assert!(state.shown.contains_key("mx11"));
            assert!(!state.shown.contains_key("mx0"));
            assert_eq!(state.waiting.len(), 1);
            assert_eq!(
                state.more.as_ref().unwrap().message(),
                "+1 more in progress"
            );
        }
        reporter.event(&done("mx1"));
        {
            let state = reporter.state();
            assert!(state.shown.contains_key("mx12"));
            assert!(state.waiting.is_empty());
            assert!(state.more.is_none(), "the +N more line goes away at zero");
            assert_eq!(state.overall.as_ref().unwrap().position(), 3);
        }
    }
}
