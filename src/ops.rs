//! Fleet operations on running instances (status, queues, logs): one connection and one round
//! trip per host (two for a confirmed purge: count, then delete). The scripts and the readers
//! of their output are in `postfleet_core::ops`; this is the I/O around them.

use std::sync::Arc;

use postfleet_core::inventory::Host;
use postfleet_core::outcome::{HostOutcome, HostProblem};
use postfleet_ssh::ExecOutput;

use crate::fleet::{self, problem_of};

/// Connects to every host (at most `forks` at once) and runs the script `make` gives,
/// handing its output to `read`.
pub async fn on_hosts<T, M, R>(
    hosts: Vec<Host>,
    connector: Arc<crate::reach::Connector>,
    forks: usize,
    make: M,
    read: R,
) -> Vec<HostOutcome<T>>
where
    T: Default + Send + 'static,
    M: Fn(&Host) -> String + Send + Sync + 'static,
    R: Fn(&Host, ExecOutput) -> Result<T, HostProblem> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let read = Arc::new(read);
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let on_panic = move |index: usize, message: String| {
        HostOutcome::stopped(
            names[index].clone(),
            HostProblem::Failed(format!(
                "internal error (a bug in postfleet, please report it): {message}"
            )),
        )
    };
    fleet::bounded(
        hosts,
        forks,
        move |host: Host| {
            let (connector, make, read) = (connector.clone(), make.clone(), read.clone());
            async move {
                let result = async {
                    // Any failure to get in (address, host key, auth) counts as unreachable,
                    // as for apply.
                    let session = connector
                        .connect(&host.name)
                        .await
                        .map_err(|e| HostProblem::Unreachable(e.to_string()))?;
                    let out = session.run_script(&make(&host), &mut |_| {}).await;
                    session.close().await;
                    read(&host, out.map_err(problem_of)?)
                }
                .await;
                HostOutcome::of(host.name.clone(), result)
            }
        },
        on_panic,
    )
    .await
}
