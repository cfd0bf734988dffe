//! What the user sees: progress on a terminal, plain lines or JSON lines otherwise, and a recap.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Changed,
    Failed,
    Skipped,
}

/// Counts and timings for one host, shown in the recap and the JSON summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HostSummary {
    pub host: String,
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub unreachable: bool,
    /// SSH commands (channel round trips) this run used on the host.
    pub round_trips: u32,
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Phase timings in seconds: connect, facts, plan, apply.
    pub timings: Timings,
    /// The reason a host failed or was unreachable.
    pub error: Option<String>,
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

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

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
    /// The host is done (converged, failed or unreachable).
    HostDone { summary: HostSummary },
}

/// A sink for events. Implementations must not garble each other's output.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
    /// Called once after every host is done: print the recap (or the JSON summary line).
    fn finish(&self, summaries: &[HostSummary], elapsed: Duration);
}
