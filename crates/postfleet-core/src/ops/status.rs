//! `postfleet status`: the facts probe with no managed files, read into one row per instance.

use crate::facts::{self, HostFacts, InitSystem};
use crate::model::DesiredHost;
use crate::outcome::HostProblem;
use postfleet_shell::ExecOutput;

/// The facts probe with no managed files: instances, units, queues.
pub fn status_script() -> String {
    facts::probe_script(&DesiredHost::default())
}

pub fn read_facts(out: ExecOutput) -> Result<HostFacts, HostProblem> {
    facts::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| {
        HostProblem::Failed(format!(
            "{e}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// One row of `postfleet status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusRow {
    pub host: String,
    pub instance: String,
    /// postmulti's enable flag (`-` for the default instance, which has none).
    pub enabled: String,
    /// The systemd unit that runs it (`postfix.service`, `postfix@newsletter.service`...), or
    /// `-`: no systemd, or no unit runs it (driven with `postmulti -p`).
    pub unit: String,
    /// Unit ActiveState with systemd; `running`/`stopped` otherwise.
    pub state: String,
    pub queue: Option<u64>,
    /// Why a host with systemd runs this instance without a unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub fn status_rows(host: &str, facts: &HostFacts) -> Vec<StatusRow> {
    if facts.postfix_version.is_none() {
        return vec![StatusRow {
            host: host.into(),
            instance: "-".into(),
            enabled: "-".into(),
            unit: "-".into(),
            state: "postfix not installed".into(),
            queue: None,
            note: None,
        }];
    }
    facts
        .instances
        .values()
        .map(|inst| {
            let unit = facts.unit_for(&inst.name);
            let note = (facts.init == InitSystem::Systemd && unit.is_none())
                .then(|| facts.template.describe());
            let state = match (&facts.init, &unit) {
                (InitSystem::Systemd, Some(u)) => facts
                    .unit_state(u)
                    .map(|s| s.active.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into()),
                _ if inst.running => "running".into(),
                _ => "stopped".into(),
            };
            StatusRow {
                host: host.into(),
                instance: inst.name.to_string(),
                enabled: if inst.name.is_default() {
                    "-".into()
                } else if inst.enabled {
                    "yes".into()
                } else {
                    "no".into()
                },
                unit: unit.map_or_else(|| "-".into(), |u| format!("{u}.service")),
                state,
                queue: inst.queue_size,
                note,
            }
        })
        .collect()
}
