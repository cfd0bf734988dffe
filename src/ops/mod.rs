//! Fleet operations on running instances: status, queues, logs. One connection and one
//! round trip per host (two for a confirmed purge: count, then delete).

pub mod logs;
pub mod queue;

use std::sync::Arc;

use crate::facts::{self, HostFacts, InitSystem};
use crate::inventory::Host;
use crate::plan::desired::{DesiredHost, InstanceName};
use crate::ssh::{shell_quote, ExecOutput, Session, SshError, SshOptions};

/// What happened on one host: its value, or why there is none.
#[derive(Debug, Clone)]
pub struct HostOutcome<T> {
    pub host: String,
    pub result: Result<T, HostProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProblem {
    Unreachable(String),
    Failed(String),
}

impl std::fmt::Display for HostProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostProblem::Unreachable(e) => write!(f, "unreachable: {e}"),
            HostProblem::Failed(e) => write!(f, "{e}"),
        }
    }
}

fn problem(e: SshError) -> HostProblem {
    if e.is_lost_connection() {
        HostProblem::Unreachable(e.to_string())
    } else {
        HostProblem::Failed(e.to_string())
    }
}

/// Connects to every host (at most `forks` at once) and runs the scripts `make` gives,
/// one after the other on the same connection, handing the outputs to `read`.
pub async fn on_hosts<T, M, R>(
    hosts: Vec<Host>,
    ssh: Arc<SshOptions>,
    forks: usize,
    make: M,
    read: R,
) -> Vec<HostOutcome<T>>
where
    T: Send + 'static,
    M: Fn(&Host) -> String + Send + Sync + 'static,
    R: Fn(&Host, ExecOutput) -> Result<T, HostProblem> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let read = Arc::new(read);
    crate::fleet::bounded(hosts, forks, move |host: Host| {
        let (ssh, make, read) = (ssh.clone(), make.clone(), read.clone());
        async move {
            let result = async {
                // Any failure to get in (address, host key, auth) counts as unreachable,
                // as for apply.
                let session = Session::connect(&host.connection, &ssh)
                    .await
                    .map_err(|e| HostProblem::Unreachable(e.to_string()))?;
                let out = session.run_script(&make(&host), &mut |_| {}).await;
                session.close().await;
                read(&host, out.map_err(problem)?)
            }
            .await;
            HostOutcome {
                host: host.name.clone(),
                result,
            }
        }
    })
    .await
}

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
                    .map(|s| s.active.clone())
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

/// Shell words selecting instances: the named ones, or every instance postmulti lists.
pub fn instance_list_shell(instances: &[InstanceName]) -> String {
    if instances.is_empty() {
        "$(postmulti -l | awk '{print $1}')".into()
    } else {
        instances
            .iter()
            .map(|i| shell_quote(i.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
