//! What the user sees: progress on a terminal, plain lines or JSON lines otherwise, and a recap.
//!
//! [`reporter_for`] picks the [`Reporter`]; [`table`] renders fleet-wide views for the operations
//! commands; [`diff`] builds the (redacted) diffs that [`Event::Step`] carries.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

pub mod diff;
pub mod drift;
pub mod excerpt;
pub mod grouped;
pub mod json;
pub mod plain;
pub mod progress;
pub mod recap;
pub use recap::timings_table;
mod style;
pub use postfleet_core::table;

pub use postfleet_core::apply::StepStatus;

pub use postfleet_core::outcome::{ApplyOutcome, Timings, Verdict};

/// One thing that happened during a run. Hosts run concurrently, so events of different
/// hosts interleave; events of one host arrive in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run starts: how many hosts, and whether it is check mode.
    RunStarted { hosts: usize, check: bool },
    /// A host's current activity changed (connecting, gathering facts, applying...).
    HostPhase { host: String, phase: String },
    /// One step of the plan finished (or, in check mode, would run).
    Step {
        host: String,
        /// e.g. `postfix-newsletter: write /etc/postfix-newsletter/transport`
        name: String,
        status: StepStatus,
        /// Why it failed or what it did, one line.
        message: Option<String>,
        /// A unified diff, already redacted, shown with --diff.
        diff: Option<String>,
    },
    /// A setting of a host was changed outside postfleet since its last apply.
    Drift {
        host: String,
        drift: postfleet_core::drift::Drift,
    },
    /// The host is done (converged, failed or unreachable).
    HostDone { summary: ApplyOutcome },
    /// A batch of the rollout starts (`index` from 1, of `batches`).
    BatchStart {
        index: usize,
        batches: usize,
        hosts: Vec<String>,
    },
    /// A batch ended: how many of its hosts failed or were unreachable.
    BatchEnd {
        index: usize,
        batches: usize,
        failed: usize,
    },
    /// The rollout stopped: why, and the hosts never started.
    RolloutStopped {
        reason: String,
        not_attempted: Vec<String>,
    },
}

/// A sink for events. Implementations must not garble each other's output.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
    /// Called once after every host is done: print the recap (or the JSON summary line).
    fn finish(&self, summaries: &[ApplyOutcome], elapsed: Duration);
    /// Runs `f` with the display out of its way, for a prompt on the terminal during a run
    /// (a key passphrase): progress bars are cleared and redrawn after. Events from other
    /// threads wait until `f` returns. The default just runs `f`.
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// How a run shows itself, from `--json` / `--plain` or the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Progress bars when stdout and stderr are both terminals (and TERM is not `dumb`),
    /// plain lines otherwise.
    #[default]
    Auto,
    /// One line per event on stdout.
    Plain,
    /// One JSON object per line on stdout, a summary object last.
    Json,
}

/// The reporter for a run. `show_diff` is `--diff`; `verbosity` counts `-v` flags: at 1 and
/// above, unchanged steps and host phases are shown too (JSON output is not affected).
pub fn reporter_for(mode: OutputMode, show_diff: bool, verbosity: u8) -> Arc<dyn Reporter> {
    let stdout_is_tty = std::io::stdout().is_terminal();
    match mode {
        OutputMode::Json => Arc::new(json::JsonReporter::new(
            Box::new(std::io::stdout()),
            show_diff,
        )),
        OutputMode::Auto if progress_fits() => Arc::new(progress::ProgressReporter::new(
            show_diff,
            verbosity,
            style::colour_wanted(true),
        )),
        OutputMode::Auto | OutputMode::Plain => Arc::new(plain::PlainReporter::new(
            Box::new(std::io::stdout()),
            show_diff,
            verbosity,
            style::colour_wanted(stdout_is_tty),
        )),
    }
}

/// Bars go to stderr and the recap to stdout, so both must be a terminal: with stdout
/// redirected the user wants a record, which plain lines give.
fn progress_fits() -> bool {
    std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal()
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
}

/// Seconds for people: `0.42s`, `12.3s`, `4m05s`, `1h02m`.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = duration.as_secs();
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

/// A writer the tests can read back after handing it to a reporter.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_picks_a_readable_unit() {
        assert_eq!(human_duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
    }
}
