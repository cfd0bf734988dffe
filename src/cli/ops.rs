//! `status`, `queue`, `logs`: fleet-wide views, one row per host and instance.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::run::{input_error, load_targets, runtime, ssh_options};
use super::{Exit, OpsArgs, QueueCommand};
use crate::ops;
use postfleet_core::error::InputError;
use postfleet_core::inventory::Host;
use postfleet_core::model::InstanceName;
use postfleet_core::ops::{logs, queue, status};
use postfleet_core::outcome::{fleet_exit, HostOutcome, HostProblem};
use postfleet_ssh::ExecOutput;

fn parse_instances(raw: &[String]) -> Result<Vec<InstanceName>, InputError> {
    raw.iter()
        .map(|r| {
            InstanceName::parse(r).map_err(|e| {
                InputError::new(format!("--instance: {e}"))
                    .hint("postfleet status lists the instances")
            })
        })
        .collect()
}

/// Runs one script per host and collects the outcomes.
fn gather<T: Default + Send + 'static>(
    args: &OpsArgs,
    hosts: Vec<Host>,
    script: String,
    read: impl Fn(&Host, ExecOutput) -> Result<T, HostProblem> + Send + Sync + 'static,
) -> Result<Vec<HostOutcome<T>>, Exit> {
    let rt = runtime()?;
    let connector = super::run::connector(&args.connect, &hosts, ssh_options(&args.connect))?;
    Ok(rt.block_on(async {
        let outcomes = ops::on_hosts(
            hosts,
            connector.clone(),
            args.connect.forks,
            move |_| script.clone(),
            read,
        )
        .await;
        connector.close().await;
        outcomes
    }))
}

/// Prints rows as a table (or JSON lines), then the hosts that failed; returns the exit code.
fn print_rows<T: Serialize>(
    json: bool,
    headers: &[&str],
    outcomes: &[HostOutcome<Vec<T>>],
    cells: impl Fn(&T) -> Vec<String>,
) -> Exit {
    let mut table_rows = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for outcome in outcomes {
        match &outcome.problem {
            None => {
                for row in &outcome.value {
                    if json {
                        let _ =
                            writeln!(stdout, "{}", serde_json::to_string(row).unwrap_or_default());
                    } else {
                        table_rows.push(cells(row));
                    }
                }
            }
            Some(problem) if json => {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::json!({
                        "host": outcome.host,
                        "error": problem.to_string(),
                        "unreachable": problem.is_unreachable(),
                    })
                );
            }
            Some(_) => {}
        }
    }
    if !json {
        let _ = write!(
            stdout,
            "{}",
            postfleet_core::table::render(headers, &table_rows)
        );
    }
    for outcome in outcomes {
        if let Some(problem) = &outcome.problem {
            eprintln!("{}: {problem}", outcome.host);
        }
    }
    exit_for(outcomes)
}

fn exit_for<T>(outcomes: &[HostOutcome<T>]) -> Exit {
    // An operation has no steps: a host fails by its problem alone.
    fleet_exit(outcomes, |_| 0)
}

fn hosts_of(args: &OpsArgs) -> Result<Vec<Host>, Exit> {
    load_targets(&args.target)
        .map(|(_, _, hosts)| hosts)
        .map_err(|e| input_error(&e))
}

pub fn status(args: OpsArgs) -> Exit {
    let hosts = match hosts_of(&args) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let outcomes = match gather(&args, hosts, status::status_script(), |host, out| {
        status::read_facts(out).map(|facts| status::status_rows(&host.name, &facts))
    }) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if !args.json {
        // Once per host: why instances there run without a unit.
        let mut noted = std::collections::BTreeSet::new();
        for row in outcomes.iter().flat_map(|o| &o.value) {
            if let Some(note) = &row.note {
                if noted.insert(row.host.clone()) {
                    eprintln!("{}: {note}", row.host);
                }
            }
        }
    }
    print_rows(
        args.json,
        &["HOST", "INSTANCE", "ENABLED", "UNIT", "STATE", "QUEUE"],
        &outcomes,
        |r| {
            vec![
                r.host.clone(),
                r.instance.clone(),
                r.enabled.clone(),
                r.unit.clone(),
                r.state.clone(),
                r.queue.map(|q| q.to_string()).unwrap_or_else(|| "?".into()),
            ]
        },
    )
}

pub fn queue(cmd: QueueCommand) -> Exit {
    match cmd {
        QueueCommand::List {
            ops: args,
            instances,
        } => match collect(&args, &instances, queue::list_script, queue::read_list) {
            Ok(outcomes) => print_rows(
                args.json,
                &[
                    "HOST",
                    "INSTANCE",
                    "QUEUE ID",
                    "QUEUE",
                    "SIZE",
                    "SENDER",
                    "RECIPIENTS",
                    "REASON",
                ],
                &outcomes,
                |m| {
                    vec![
                        m.host.clone(),
                        m.instance.clone(),
                        m.queue_id.clone(),
                        m.queue_name.clone(),
                        m.size.to_string(),
                        m.sender.clone(),
                        m.recipients.join(","),
                        m.reason.clone(),
                    ]
                },
            ),
            Err(code) => code,
        },
        QueueCommand::Flush {
            ops: args,
            instances,
        } => match collect(&args, &instances, queue::flush_script, queue::read_counts) {
            Ok(outcomes) => print_counts(args.json, "QUEUED (FLUSHED)", &outcomes),
            Err(code) => code,
        },
        QueueCommand::Purge {
            ops: args,
            instances,
            yes,
        } => purge(args, instances, yes),
    }
}

fn targets_and_instances(
    args: &OpsArgs,
    raw: &[String],
) -> Result<(Vec<Host>, Vec<InstanceName>), Exit> {
    let names = parse_instances(raw).map_err(|e| input_error(&e))?;
    Ok((hosts_of(args)?, names))
}

/// Resolves hosts and instances, runs the script `script` builds for those instances on
/// every host, and reads each host's output with `read`.
fn collect<T: Default + Send + 'static>(
    args: &OpsArgs,
    instances: &[String],
    script: impl Fn(&[InstanceName]) -> String,
    read: fn(&str, ExecOutput) -> Result<T, HostProblem>,
) -> Result<Vec<HostOutcome<T>>, Exit> {
    let (hosts, names) = targets_and_instances(args, instances)?;
    gather(args, hosts, script(&names), move |h, out| {
        read(&h.name, out)
    })
}

fn print_counts(json: bool, what: &str, outcomes: &[HostOutcome<Vec<queue::QueueAction>>]) -> Exit {
    print_rows(json, &["HOST", "INSTANCE", what], outcomes, |a| {
        vec![a.host.clone(), a.instance.clone(), a.messages.to_string()]
    })
}

fn purge(args: OpsArgs, instances: Vec<String>, yes: bool) -> Exit {
    if let Err(e) = parse_instances(&instances) {
        return input_error(&e);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "error: queue purge deletes mail: pass --yes to confirm (no terminal to ask on)"
            );
            return Exit::BadInput;
        }
        // Count first, so the question says what will be lost.
        let counted = match collect(&args, &instances, queue::count_script, queue::read_counts) {
            Ok(o) => o,
            Err(code) => return code,
        };
        let code = print_counts(false, "QUEUED", &counted);
        if code != Exit::Success {
            eprintln!("not purging: some hosts could not be counted");
            return code;
        }
        let total: u64 = counted
            .iter()
            .flat_map(|o| &o.value)
            .map(|a| a.messages)
            .sum();
        eprint!("Delete these {total} message(s) for good? [y/N] ");
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err()
            || !answer.trim().eq_ignore_ascii_case("y")
        {
            eprintln!("nothing deleted");
            return Exit::Success;
        }
    }
    match collect(&args, &instances, queue::purge_script, queue::read_counts) {
        Ok(outcomes) => print_counts(args.json, "DELETED", &outcomes),
        Err(code) => code,
    }
}

pub fn logs(args: OpsArgs, instances: Vec<String>, since: &str, lines: u32) -> Exit {
    let secs = match logs::parse_duration(since) {
        Ok(s) => s,
        Err(e) => return input_error(&InputError::new(format!("--since: {e}"))),
    };
    let script = move |names: &[InstanceName]| logs::script(names, secs, lines);
    let outcomes = match collect(&args, &instances, script, logs::read) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if args.json {
        return print_rows(true, &[], &outcomes, |_| vec![]);
    }
    let mut stdout = std::io::stdout().lock();
    for l in outcomes.iter().flat_map(|o| &o.value) {
        let _ = writeln!(stdout, "{} {} | {}", l.host, l.instance, l.line);
    }
    for outcome in &outcomes {
        if let Some(problem) = &outcome.problem {
            eprintln!("{}: {problem}", outcome.host);
        }
    }
    exit_for(&outcomes)
}
