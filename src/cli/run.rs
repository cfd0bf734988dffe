//! `apply`, `plan` and `inventory`: inputs are loaded and rendered for every host before
//! any host is touched; then the fleet run; then the exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ApplyArgs, ConnectArgs, Exit, HostOrder, InventoryArgs, Output, TargetArgs};
use crate::apply::{self, HostJob, RunOptions, StopFlag};
use crate::reach::{self, ConfigChoice, Connector};
use crate::report::{self, ApplyOutcome, Event, OutputMode};
use postfleet_core::error::InputError;
use postfleet_core::inventory::{self, Host, Inventory, VarMap};
use postfleet_core::outcome::fleet_exit;
use postfleet_ssh::{HostKeyPolicy, SshOptions};

/// Prints bad input: where and what, the offending line with a caret under the column, then
/// the hint.
pub(super) fn input_error(e: &InputError) -> Exit {
    let mut head = e.clone();
    let hint = head.hint.take();
    eprintln!("error: {head}");
    if let Some(shown) = e.pos.as_ref().and_then(report::excerpt::excerpt) {
        eprint!("{shown}");
    }
    if let Some(hint) = hint {
        eprintln!("  hint: {hint}");
    }
    Exit::BadInput
}

/// Inventory, extra vars and the hosts `--limit` selects.
pub(super) fn load_targets(
    target: &TargetArgs,
) -> Result<(Inventory, VarMap, Vec<Host>), InputError> {
    let extra = inventory::extra_vars::parse(&target.extra_vars)?;
    let inv = inventory::load_all(&target.inventory, &extra)?;
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
    let (inv, _, hosts) = match load_targets(&args.target) {
        Ok(loaded) => loaded,
        Err(e) => return input_error(&e),
    };
    let choice = ConfigChoice::from_flag(args.ssh_config.file.as_deref());
    // Hosts with a connection other than SSH are listed with it, not resolved.
    let over_ssh: Vec<Host> = hosts
        .iter()
        .filter(|h| h.connection.unsupported.is_none())
        .cloned()
        .collect();
    let reaches = match reach::resolve_all(&over_ssh, &choice, reach::CliSettings::default()) {
        Ok(r) => r,
        Err(e) => return input_error(&e),
    };
    let connection = |host: &Host| {
        let shown = reaches
            .get(&host.name)
            .map(|r| r.shown.as_slice())
            .unwrap_or(&[]);
        let mut map = serde_json::Map::new();
        if let Some(unsupported) = &host.connection.unsupported {
            map.insert(
                "type".into(),
                serde_json::json!({
                    "value": unsupported.setting.value,
                    "from": unsupported.setting.from,
                    "supported": false,
                }),
            );
        }
        for s in shown {
            map.insert(
                s.setting.to_string(),
                serde_json::json!({"value": s.value, "from": s.from}),
            );
        }
        map.insert(
            "become".into(),
            serde_json::Value::Bool(host.connection.become_root),
        );
        serde_json::Value::Object(map)
    };
    print!(
        "{}",
        inventory::describe(&inv, &hosts, &connection, args.json)
    );
    Exit::Success
}

/// The run's connections: every host resolved (inventory, ssh_config, defaults) before any
/// is touched; a line of ssh_config postfleet cannot honour is bad input.
pub(super) fn connector(
    args: &ConnectArgs,
    hosts: &[Host],
    ssh: SshOptions,
) -> Result<Arc<Connector>, Exit> {
    let choice = ConfigChoice::from_flag(args.ssh_config.file.as_deref());
    let cli = reach::CliSettings {
        connect_timeout: args.connect_timeout.map(Duration::from_secs),
        accept_new: args.accept_new,
    };
    let reaches = reach::resolve_all(hosts, &choice, cli).map_err(|e| input_error(&e))?;
    Ok(Arc::new(Connector::new(ssh, reaches)))
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
        connect_timeout: Duration::from_secs(args.connect_timeout.unwrap_or(10)),
        command_timeout: Duration::from_secs(args.command_timeout),
        ..SshOptions::from_env()
    }
}

/// Where this user's run locks live: `$XDG_STATE_HOME/postfleet/locks`, else
/// `~/.local/state/postfleet/locks`. The same for a cron job and an interactive shell (unlike
/// `$XDG_RUNTIME_DIR`, which cron does not set), and the user's own (not the shared temp dir,
/// where anyone could create the lock file first).
fn lock_dir(xdg_state: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf, String> {
    let base = xdg_state
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/state")))
        .ok_or("cannot tell where to keep the run lock: set HOME")?;
    Ok(base.join("postfleet/locks"))
}

/// Makes `dir` (mode 700) or checks that it is the user's own and that no one else can
/// write to it.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != nix::unistd::getuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a directory of yours that no one else can write to (chmod go-w)",
            dir.display()
        ));
    }
    Ok(())
}

/// One run per inventory at a time on this machine (a cron job that overlaps itself): a lock
/// per source, so runs that share any source exclude each other. `Ok(Err(source))`: that
/// source is locked by another run.
type Locks = Vec<nix::fcntl::Flock<std::fs::File>>;

fn lock_all(sources: &[PathBuf]) -> Result<Result<Locks, PathBuf>, String> {
    let mut unique: Vec<(PathBuf, PathBuf)> = sources
        .iter()
        .map(|s| {
            (
                std::fs::canonicalize(s).unwrap_or_else(|_| s.clone()),
                s.clone(),
            )
        })
        .collect();
    unique.sort();
    unique.dedup_by(|a, b| a.0 == b.0);
    let mut locks = Vec::with_capacity(unique.len());
    for (canonical, given) in unique {
        match lock_for(&canonical)? {
            Some(lock) => locks.push(lock),
            None => return Ok(Err(given)),
        }
    }
    Ok(Ok(locks))
}

fn lock_for(abs: &Path) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(abs.to_string_lossy().as_bytes());
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = lock_dir(
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        postfleet_ssh::home_dir(),
    )?;
    private_dir(&dir)?;
    let path = dir.join(format!("{tag}.lock"));
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

/// What `apply` runs as: itself, `plan` (check mode with diffs), or `drift` (check mode that
/// shows what drifted and no steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Apply,
    Plan,
    Drift,
}

pub fn apply(args: ApplyArgs, kind: RunKind) -> Exit {
    let check = args.check || kind != RunKind::Apply;
    let show_diff = (args.diff || kind == RunKind::Plan) && kind != RunKind::Drift;
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
    let mut jobs: Vec<HostJob> = hosts
        .iter()
        .zip(desired)
        .filter(|(_, desired)| !desired.instances.is_empty())
        .map(|(host, desired)| HostJob {
            host: host.clone(),
            desired,
        })
        .collect();
    let rollout = match rollout_of(&args, &playbook, &mut jobs, check) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if jobs.is_empty() {
        eprintln!(
            "error: no play of {} targets the selected hosts",
            args.playbook.display()
        );
        return Exit::BadInput;
    }
    // An ansible_connection postfleet does not have, on a host the run would work on.
    if let Some(e) = jobs.iter().find_map(|j| j.host.check_reachable().err()) {
        return input_error(&e);
    }
    let _locks = match lock_all(&args.target.inventory) {
        Ok(Ok(locks)) => locks,
        Ok(Err(busy)) => {
            eprintln!(
                "error: another postfleet run is working on {} right now; try again when it ends",
                busy.display()
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
    let mut reporter = report::reporter_for(mode, show_diff, args.verbose);
    if check && show_diff && !args.per_host && mode != OutputMode::Json {
        reporter = Arc::new(report::grouped::GroupedChanges::new(reporter));
    }
    if kind == RunKind::Drift {
        reporter = Arc::new(report::drift::DriftOnly::new(reporter));
    }
    let ssh = ssh_options(&args.connect);
    // A passphrase prompt must not be drawn over by the progress bars.
    let prompt_reporter = reporter.clone();
    ssh.keys
        .set_prompt_wrapper(Arc::new(move |ask: &mut dyn FnMut()| {
            prompt_reporter.suspend(ask)
        }));
    let hosts: Vec<Host> = jobs.iter().map(|j| j.host.clone()).collect();
    let connector = match connector(&args.connect, &hosts, ssh) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = Arc::new(RunOptions {
        check,
        force: args.force,
        forks: args.connect.forks,
        connector,
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
        let connector = opts.connector.clone();
        let summaries =
            apply::run_fleet(jobs, opts, reporter.clone(), stop.clone(), &rollout).await;
        connector.close().await;
        watcher.abort();
        (summaries, stop.stopped())
    });
    reporter.finish(&summaries, started.elapsed());
    if args.timings {
        eprint!("{}", report::timings_table(&summaries));
    }
    // Exit 5: `drift` when a host drifted; apply and plan with --detailed-exitcode when
    // changes were made or needed.
    let five = |tally: &postfleet_core::outcome::ApplyTally| match kind {
        RunKind::Drift => tally.drift > 0,
        _ => args.detailed_exitcode && tally.changed > 0,
    };
    exit_code(&summaries, interrupted, five)
}

/// The batches and the stop rule: the flags, else the plays' `serial:` and
/// `max_fail_percentage:` (plays that disagree are bad input); hosts put in `--order`.
fn rollout_of(
    args: &ApplyArgs,
    playbook: &postfleet_core::playbook::Playbook,
    jobs: &mut [HostJob],
    check: bool,
) -> Result<apply::Rollout, Exit> {
    use postfleet_core::rollout::{self, Serial, StopRule};
    let serial = match &args.serial {
        Some(text) => Some(Serial::parse(text).map_err(|e| {
            eprintln!("error: --serial: {e}");
            Exit::BadInput
        })?),
        None => one_setting(playbook, "serial", |p| p.serial.clone())?,
    };
    let max_fail = match args.max_fail_percentage {
        Some(p) => Some(p),
        None => one_setting(playbook, "max_fail_percentage", |p| {
            p.max_fail_percentage.clone()
        })?,
    };
    match args.order {
        HostOrder::Inventory => {}
        HostOrder::Sorted => jobs.sort_by(|a, b| a.host.name.cmp(&b.host.name)),
        HostOrder::Shuffle => {
            use rand::seq::SliceRandom;
            jobs.shuffle(&mut rand::rng());
        }
    }
    Ok(apply::Rollout {
        batches: rollout::batches(jobs.len(), serial.as_ref()),
        stop: max_fail.map_or(StopRule::FirstFailedBatch, StopRule::MaxFailPercentage),
        never_stop: check,
    })
}

/// A rollout setting of the plays: the one value they give, None when none does; two plays
/// with different values are bad input (one rollout runs every play's hosts together).
fn one_setting<T: PartialEq + std::fmt::Display>(
    playbook: &postfleet_core::playbook::Playbook,
    name: &str,
    of: impl Fn(&postfleet_core::playbook::Play) -> Option<(T, postfleet_core::error::SourcePos)>,
) -> Result<Option<T>, Exit> {
    let mut found: Option<(T, postfleet_core::error::SourcePos)> = None;
    for play in &playbook.plays {
        let Some((value, at)) = of(play) else {
            continue;
        };
        match &found {
            Some((first, first_at)) if *first != value => {
                let e = InputError::new(format!(
                    "plays disagree on `{name}` ({first_at} says {first}): one rollout runs every play's hosts together"
                ))
                .hint(format!("give every play the same `{name}`, or pass it on the command line"));
                let mut e = e;
                e.pos = Some(at);
                return Err(input_error(&e));
            }
            Some(_) => {}
            None => found = Some((value, at)),
        }
    }
    Ok(found.map(|(value, _)| value))
}

/// The run's exit code: 130 when interrupted, 2 or 3 when hosts failed or were unreachable,
/// else 5 when a host's tally says so (`five`), else 0.
fn exit_code(
    summaries: &[ApplyOutcome],
    interrupted: bool,
    five: impl Fn(&postfleet_core::outcome::ApplyTally) -> bool,
) -> Exit {
    if interrupted {
        return Exit::Interrupted;
    }
    match fleet_exit(summaries, |tally| tally.failed) {
        Exit::Success if summaries.iter().any(|s| five(&s.value)) => Exit::Drift,
        code => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_dir_is_the_users_own_whatever_the_session() {
        let home = Some(PathBuf::from("/home/ops"));
        // cron has no XDG_RUNTIME_DIR; an interactive shell has one: the lock dir is the same
        assert_eq!(
            lock_dir(None, home.clone()).unwrap(),
            PathBuf::from("/home/ops/.local/state/postfleet/locks")
        );
        assert_eq!(
            lock_dir(Some("/home/ops/.state".into()), home.clone()).unwrap(),
            PathBuf::from("/home/ops/.state/postfleet/locks")
        );
        assert!(lock_dir(None, None).is_err());
    }

    #[test]
    fn a_lock_dir_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locks");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&dir)
            .unwrap_err()
            .contains("no one else can write"));
    }
}
