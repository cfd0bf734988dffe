//! `apply`, `plan` and `inventory`: inputs are loaded and rendered for every host before
//! any host is touched; then the fleet run; then the exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ApplyArgs, ConnectArgs, Exit, InventoryArgs, Output, TargetArgs};
use crate::apply::{self, HostJob, RunOptions, StopFlag};
use crate::report::{self, Event, HostSummary, OutputMode};
use postfleet_core::error::InputError;
use postfleet_core::inventory::{self, Host, Inventory, VarMap};
use postfleet_ssh::{HostKeyPolicy, SshOptions};

pub(super) fn input_error(e: &InputError) -> Exit {
    eprintln!("error: {e}");
    Exit::BadInput
}

/// Inventory, extra vars and the hosts `--limit` selects.
pub(super) fn load_targets(
    target: &TargetArgs,
) -> Result<(Inventory, VarMap, Vec<Host>), InputError> {
    let extra = inventory::extra_vars::parse(&target.extra_vars)?;
    let inv = inventory::load(&target.inventory, &extra)?;
    let hosts: Vec<Host> = match &target.limit {
        Some(pattern) => inventory::select(&inv, pattern)?
            .into_iter()
            .cloned()
            .collect(),
        None => inv.hosts.clone(),
    };
    Ok((inv, extra, hosts))
}

pub fn inventory(args: InventoryArgs) -> Exit {
    match load_targets(&args.target) {
        Ok((inv, _, hosts)) => {
            print!("{}", inventory::describe(&inv, &hosts, args.json));
            Exit::Success
        }
        Err(e) => input_error(&e),
    }
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::Internal
        })
}

pub(super) fn ssh_options(args: &ConnectArgs) -> SshOptions {
    SshOptions {
        host_key_policy: if args.accept_new {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        connect_timeout: Duration::from_secs(args.connect_timeout),
        command_timeout: Duration::from_secs(args.command_timeout),
        ..SshOptions::from_env()
    }
}

/// One run per inventory at a time on this machine (a cron job that overlaps itself).
fn lock_for(inventory: &Path) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, String> {
    use sha2::Digest;
    let abs = std::fs::canonicalize(inventory).unwrap_or_else(|_| inventory.to_path_buf());
    let digest = sha2::Sha256::digest(abs.to_string_lossy().as_bytes());
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("postfleet-{}-{tag}.lock", nix::unistd::getuid()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

pub fn apply(args: ApplyArgs, plan_only: bool) -> Exit {
    let check = args.check || plan_only;
    let show_diff = args.diff || plan_only;
    let (inv, extra, hosts) = match load_targets(&args.target) {
        Ok(t) => t,
        Err(e) => return input_error(&e),
    };
    let playbook = match postfleet_core::playbook::load(&args.playbook) {
        Ok(p) => p,
        Err(e) => return input_error(&e),
    };
    // Render every host before touching any: a template error stops the run here (the
    // first one is reported, as for every input error).
    let desired = match postfleet_core::render::render_all(&playbook, &inv, &hosts, &extra) {
        Ok(desired) => desired,
        Err(errors) => return input_error(&errors[0]),
    };
    let jobs: Vec<HostJob> = hosts
        .iter()
        .zip(desired)
        .filter(|(_, desired)| !desired.instances.is_empty())
        .map(|(host, desired)| HostJob {
            host: host.clone(),
            desired,
        })
        .collect();
    if jobs.is_empty() {
        eprintln!(
            "error: no play of {} targets the selected hosts",
            args.playbook.display()
        );
        return Exit::BadInput;
    }
    let _lock = match lock_for(&args.target.inventory) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            eprintln!(
                "error: another postfleet run is working on {} right now; try again when it ends",
                args.target.inventory.display()
            );
            return Exit::Locked;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };

    let mode = if args.json {
        OutputMode::Json
    } else {
        match args.output {
            Output::Auto => OutputMode::Auto,
            Output::Plain => OutputMode::Plain,
            Output::Json => OutputMode::Json,
        }
    };
    let reporter = report::reporter_for(mode, show_diff, args.verbose);
    let ssh = ssh_options(&args.connect);
    // A passphrase prompt must not be drawn over by the progress bars.
    let prompt_reporter = reporter.clone();
    ssh.keys
        .set_prompt_wrapper(Arc::new(move |ask: &mut dyn FnMut()| {
            prompt_reporter.suspend(ask)
        }));
    let opts = Arc::new(RunOptions {
        check,
        force: args.force,
        forks: args.connect.forks,
        ssh,
    });
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let started = Instant::now();
    let stop = Arc::new(StopFlag::default());
    let (summaries, interrupted) = runtime.block_on(async {
        let watcher = {
            let stop = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.stop();
                    eprintln!(
                        "\ninterrupted: finishing the hosts in progress (Ctrl-C again to abort)"
                    );
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(Exit::Interrupted as i32);
                    }
                }
            })
        };
        reporter.event(&Event::RunStarted {
            hosts: jobs.len(),
            check,
        });
        let summaries = apply::run_fleet(jobs, opts, reporter.clone(), stop.clone()).await;
        watcher.abort();
        (summaries, stop.stopped())
    });
    reporter.finish(&summaries, started.elapsed());
    if args.timings {
        eprint!("{}", report::timings_table(&summaries));
    }
    exit_code(&summaries, interrupted, args.detailed_exitcode)
}

fn exit_code(summaries: &[HostSummary], interrupted: bool, detailed: bool) -> Exit {
    if interrupted {
        Exit::Interrupted
    } else if summaries.iter().any(|s| s.failures() > 0) {
        Exit::HostFailed
    } else if summaries.iter().any(|s| s.unreachable()) {
        Exit::Unreachable
    } else if detailed && summaries.iter().any(|s| s.changed > 0) {
        Exit::Drift
    } else {
        Exit::Success
    }
}
