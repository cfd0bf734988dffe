//! Turns a host's plan into one shell script: the whole apply is one round trip.
//!
//! Every command line is a [`Line`]: values are quoted words or base64 words, and only fixed
//! `&'static str` text is left unquoted. The fixed shell functions (`pf_*`) live in
//! prelude.sh; this module strings their calls together, one block per step.

use base64::Engine;

use crate::model::{InstanceName, MasterService};
use crate::plan::{mastercf, Action, ConfigEdit, Driver, Plan, Step};
use postfleet_shell::{base64_word, quote, Line};

const PRELUDE: &str = include_str!("prelude.sh");

/// The script for a plan. Step N of `plan.steps` reports as `@@step N ...`.
pub fn build(plan: &Plan) -> String {
    let mut s = format!(
        "{}PF_PLANNED_AT={}\n{PRELUDE}",
        crate::scripts::PREAMBLE,
        plan.generation
    );
    let mut txn: Option<InstanceName> = None;
    let mut i = 0;
    while i < plan.steps.len() {
        let step = &plan.steps[i];
        let instance = step.instance.as_ref();
        let is_write = matches!(
            step.action,
            Action::WriteMainCf(_)
                | Action::WriteMasterCf(_)
                | Action::WriteFile(_)
                | Action::Postmap { .. }
        );
        if is_write && txn.as_ref() != instance {
            s.push_str("pf_txn_close\n");
            if let Some(name) = instance {
                let begin = Line::new()
                    .text("[ -z \"$pf_failed\" ] && pf_txn_begin")
                    .word(config_dir(plan, name))
                    .word(name.as_str())
                    .text(owed_activation(plan, name).unwrap_or("-"));
                s.push_str(&format!("{begin}\n"));
            }
            txn = instance.cloned();
        }
        // main.cf and master.cf of one instance are staged and validated together.
        if let (Action::WriteMainCf(_) | Action::WriteMasterCf(_), Some(name)) =
            (&step.action, instance)
        {
            let mut group = vec![i];
            if matches!(step.action, Action::WriteMainCf(_))
                && plan.steps.get(i + 1).is_some_and(|n| {
                    n.instance.as_ref() == Some(name)
                        && matches!(n.action, Action::WriteMasterCf(_))
                })
            {
                group.push(i + 1);
            }
            s.push_str(&config_block(plan, name, &group));
            i += group.len();
            continue;
        }
        // The title is a comment for whoever reads the script: no newline may end it early.
        let title = step.title().replace(['\n', '\r'], " ");
        s.push_str(&format!(
            "\n# step {i}: {title}\nif [ -z \"$pf_failed\" ]; then\n"
        ));
        s.push_str(&step_body(plan, i, step));
        s.push_str("fi\n");
        if matches!(
            step.action,
            Action::Start | Action::Reload | Action::Restart
        ) && txn.as_ref() == instance
        {
            txn = None;
        }
        i += 1;
    }
    s.push_str("pf_txn_close\n[ -z \"$pf_failed\" ] || exit 2\npf_emit @@end\n");
    s
}

fn config_dir(plan: &Plan, name: &InstanceName) -> String {
    plan.config_dirs
        .get(name)
        .cloned()
        .unwrap_or_else(|| name.config_dir())
}

/// The reload or restart the plan will do for an instance after writing its files.
fn owed_activation(plan: &Plan, name: &InstanceName) -> Option<&'static str> {
    plan.steps
        .iter()
        .filter(|s| s.instance.as_ref() == Some(name))
        .find_map(|s| match s.action {
            Action::Restart => Some("restart"),
            Action::Reload => Some("reload"),
            _ => None,
        })
}

/// `pf_report64 I STATUS BASE64(message)`: a message known when the script is built is
/// encoded here rather than by a base64 process on the host.
fn report(i: usize, status: &'static str, message: &str) -> Line {
    Line::new()
        .text("pf_report64")
        .word(i.to_string())
        .text(status)
        .base64(message.as_bytes())
}

/// `pf_fail I 'PREFIX'"$out"`: the step failed with `prefix` and the command's output.
fn fail_with_output(i: usize, prefix: &str) -> String {
    format!(
        "{}\"$out\"",
        Line::new().text("pf_fail").word(i.to_string()).word(prefix)
    )
}

/// Runs `command`; reports the step changed with `ok_message`, or failed with `what: output`.
fn report_ok_or_fail(i: usize, command: &Line, ok_message: &str, what: &str) -> String {
    format!(
        "  if out=$({command} 2>&1); then {}; else {}; fi\n",
        report(i, "changed", ok_message),
        fail_with_output(i, &format!("{what}: "))
    )
}

/// `{ A && B; }`: both, the second only when the first succeeded.
fn and_then(first: &Line, second: &Line) -> Line {
    Line::new()
        .text("{")
        .line(first)
        .text("&&")
        .line(second)
        .text("; }")
}

/// `pf_settle` on the main.cf of each config dir: postmulti -e just rewrote them, and the
/// next Postfix program to read one would otherwise pause for up to two seconds.
fn settle_main_cf(config_dirs: &[&str]) -> Line {
    Line::new()
        .text("pf_settle")
        .words(config_dirs.iter().map(|dir| format!("{dir}/main.cf")))
}

/// How a step ended, as the script reports it (and the report shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Changed,
    Failed,
    /// Not run: an earlier step failed.
    Skipped,
}

impl StepStatus {
    /// The lowercase word used in JSON and in the progress display.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Changed => "changed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// `postmulti -i NAME ARGS`.
fn postmulti(name: &InstanceName, args: &'static str) -> Line {
    Line::new()
        .text("postmulti -i")
        .word(name.as_str())
        .text(args)
}

/// `systemctl VERB UNIT`.
fn systemctl(verb: &'static str, unit: &str) -> Line {
    Line::new().text("systemctl").text(verb).word(unit)
}

/// `pf_tty CMD`: postfix-script's words reach the report only on a terminal.
fn tty(command: Line) -> Line {
    Line::new().text("pf_tty").line(&command)
}

/// Forgets the reload or restart an instance was owed (its activation is done).
fn forget_owed(name: &InstanceName) -> String {
    format!(
        "rm -f \"$PF_STATE/pending/\"{}",
        Line::new().word(name.as_str())
    )
}

fn step_body(plan: &Plan, i: usize, step: &Step) -> String {
    let name = step
        .instance
        .clone()
        .unwrap_or_else(InstanceName::default_instance);
    let driver = plan
        .drivers
        .get(&name)
        .cloned()
        .unwrap_or(Driver::Postmulti);
    let unit = match &driver {
        Driver::Systemd { unit } => unit.clone(),
        Driver::Postmulti => String::new(),
    };
    let summary = step.summary.as_str();
    let default_dir = config_dir(plan, &InstanceName::default_instance());
    match &step.action {
        Action::InitMultiInstance => {
            let cmd = Line::new().text("postmulti -e init");
            let settle = settle_main_cf(&[&default_dir]);
            report_ok_or_fail(i, &and_then(&cmd, &settle), summary, cmd.as_str())
        }
        Action::Create { group } => {
            let mut cmd = Line::new().text("postmulti -I").word(name.as_str());
            if let Some(group) = group {
                cmd = cmd.text("-G").word(group);
            }
            let cmd = cmd.text("-e create");
            // postmulti records the new instance in the default instance's main.cf too.
            let settle = settle_main_cf(&[&default_dir, &config_dir(plan, &name)]);
            report_ok_or_fail(i, &and_then(&cmd, &settle), summary, cmd.as_str())
        }
        Action::SetEnabled(on) => {
            let cmd = postmulti(&name, if *on { "-e enable" } else { "-e disable" });
            let settle = settle_main_cf(&[&config_dir(plan, &name)]);
            report_ok_or_fail(i, &and_then(&cmd, &settle), summary, cmd.as_str())
        }
        Action::DaemonReload => {
            let cmd = Line::new().text("systemctl daemon-reload");
            report_ok_or_fail(i, &cmd, summary, cmd.as_str())
        }
        Action::EnableUnit => {
            let cmd = systemctl("enable", &unit);
            report_ok_or_fail(i, &cmd, summary, cmd.as_str())
        }
        Action::DisableUnit => {
            let cmd = systemctl("disable", &unit);
            report_ok_or_fail(i, &cmd, summary, cmd.as_str())
        }
        Action::DisableStaleUnit { unit: stale } => {
            // --now: should it run after all, stop it; reset-failed: forget its failed boots.
            let cmd = systemctl("disable --now", stale);
            let forget = Line::new()
                .text("{")
                .line(&systemctl("reset-failed", stale))
                .text("2>/dev/null || :; }");
            report_ok_or_fail(i, &and_then(&cmd, &forget), summary, cmd.as_str())
        }
        Action::PurgeQueue => {
            let cmd = postmulti(&name, "-x postsuper -d ALL");
            report_ok_or_fail(i, &cmd, summary, cmd.as_str())
        }
        Action::Destroy => {
            let cmd = postmulti(&name, "-e destroy");
            format!(
                "  if out=$({cmd} 2>&1); then {}; {}; else {}; fi\n",
                forget_owed(&name),
                report(i, "changed", summary),
                fail_with_output(i, &format!("{cmd}: "))
            )
        }
        Action::WriteFile(file) => {
            let write = Line::new()
                .text("pf_write")
                .word(&file.path)
                .word(format!("{:o}", file.mode))
                .base64(&file.content);
            let mut body = format!("  if out=$({write} 2>&1); then\n");
            match file
                .map_type
                .as_deref()
                .filter(|t| crate::plan::is_indexed_map(t))
            {
                Some(map_type) => {
                    let postmap = Line::new()
                        .text("pf_postmap")
                        .word(config_dir(plan, &name))
                        .word(format!("{map_type}:{}", file.path))
                        .word(format!("{:o}", file.mode));
                    body.push_str(&format!(
                        "    if out=$({postmap} 2>&1); then {}; else {}; fi\n",
                        report(i, "changed", summary),
                        fail_with_output(i, "postmap: ")
                    ));
                }
                None => body.push_str(&format!("    {}\n", report(i, "changed", summary))),
            }
            body.push_str(&format!(
                "  else {}; fi\n",
                fail_with_output(i, &format!("cannot write {}: ", file.path))
            ));
            body
        }
        Action::Postmap { path, map_type } => {
            let cmd = Line::new()
                .text("pf_postmap")
                .word(config_dir(plan, &name))
                .word(format!("{map_type}:{path}"));
            report_ok_or_fail(i, &cmd, summary, "postmap")
        }
        Action::Stop => {
            let stop = match driver {
                // A master started by hand is not the unit's: stop it with postmulti too.
                Driver::Systemd { .. } => Line::new()
                    .line(&systemctl("stop", &unit))
                    .text("; !")
                    .line(&running(plan, &name))
                    .text("||")
                    .line(&postmulti(&name, "-p stop")),
                Driver::Postmulti => tty(postmulti(&name, "-p stop")),
            };
            format!(
                "  out=$( {{ {stop}; }} 2>&1)\n  if {}; then {}; else {}; {}; fi\n",
                running(plan, &name),
                fail_with_output(i, "still running after stop: "),
                forget_owed(&name),
                report(i, "changed", summary)
            )
        }
        Action::Start | Action::Reload | Action::Restart => {
            activation_body(plan, i, step, &name, &driver, &unit)
        }
        Action::WriteMainCf(_) | Action::WriteMasterCf(_) => {
            unreachable!("config steps are built by config_block")
        }
    }
}

/// `pf_running CONFIG_DIR`: is the instance's master process up?
fn running(plan: &Plan, name: &InstanceName) -> Line {
    Line::new().text("pf_running").word(config_dir(plan, name))
}

fn activation_command(plan: &Plan, action: &Action, name: &InstanceName, driver: &Driver) -> Line {
    match (driver, action) {
        (Driver::Systemd { unit }, Action::Start) => systemctl("start", unit),
        (Driver::Systemd { unit }, Action::Reload) => systemctl("reload", unit),
        (Driver::Systemd { unit }, _) => systemctl("restart", unit),
        (Driver::Postmulti, Action::Start) => tty(postmulti(name, "-p start")),
        (Driver::Postmulti, Action::Reload) => tty(postmulti(name, "-p reload")),
        (Driver::Postmulti, _) => Line::new()
            .text("{ !")
            .line(&running(plan, name))
            .text("||")
            .line(&tty(postmulti(name, "-p stop")))
            .text("; } &&")
            .line(&tty(postmulti(name, "-p start"))),
    }
}

/// Start, reload or restart; verify the master runs; else put the previous files back,
/// activate those, and report Postfix's own words.
fn activation_body(
    plan: &Plan,
    i: usize,
    step: &Step,
    name: &InstanceName,
    driver: &Driver,
    unit: &str,
) -> String {
    let cmd = activation_command(plan, &step.action, name, driver);
    let running = running(plan, name);
    // After a failed reload the master may be gone: bring the old files up with a start.
    let recover = match step.action {
        Action::Reload => Line::new()
            .text("{")
            .line(&running)
            .text("&&")
            .line(&activation_command(plan, &Action::Reload, name, driver))
            .text("||")
            .line(&activation_command(plan, &Action::Start, name, driver))
            .text("; }"),
        _ => activation_command(plan, &Action::Restart, name, driver),
    };
    let why = Line::new().text("pf_why").word(name.as_str()).word(unit);
    let restore = Line::new().text("pf_restore").word(config_dir(plan, name));
    let verb = match step.action {
        Action::Start => "start",
        Action::Reload => "reload",
        _ => "restart",
    };
    format!(
        r#"  if out=$( {{ {cmd}; }} 2>&1) && {running}; then
    {forget}; pf_txn_end; {done}
  else
    why=$({why})
    if [ -n "$PF_TXN" ] && [ -s "$PF_TXN/list" ]; then
      {restore}
      recover=$( {{ {recover}; }} 2>&1)
      if {running}; then
        {forget}
        state="rolled back to the previous configuration; the instance is serving"
      else
        state="rolled back to the previous configuration, but the instance is NOT running: $recover"
      fi
      pf_txn_end
    else
      state="the instance is not running"
    fi
    pf_fail {i} "{verb} failed: $out $why
$state"
  fi
"#,
        forget = forget_owed(name),
        done = report(i, "changed", &step.summary),
    )
}

fn master_line(service: &MasterService) -> Option<String> {
    service
        .entry
        .as_ref()
        .map(|e| mastercf::desired_words(service, e).join(" "))
}

/// `[ -z "$pf_failed" ] && { out=$(CMD 2>&1) || pf_fail FIRST "WHAT: $out"; }`
fn staged_edit(command: &Line, first: usize, what: &'static str) -> String {
    format!(
        "    [ -z \"$pf_failed\" ] && {{ out=$({command} 2>&1) || pf_fail {first} \"{what}: $out\"; }}\n"
    )
}

/// `postconf -c "$PF_STAGE" ARGS`: postconf on the staged copy.
fn staged_postconf(args: &'static str) -> Line {
    Line::new().text("postconf -c \"$PF_STAGE\"").text(args)
}

fn edit_commands(file: &'static str, edit: &ConfigEdit, first: usize) -> String {
    let mut s = String::new();
    if let Some(base) = &edit.base {
        s.push_str(&format!(
            "    printf '%s' {} | base64 -d > \"$PF_STAGE/{file}\" || {}\n",
            base64_word(base.as_bytes()),
            Line::new()
                .text("pf_fail")
                .word(first.to_string())
                .word(format!("cannot stage {file}"))
        ));
    }
    let set: Vec<String> = edit
        .params
        .iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}={v}")))
        .collect();
    if !set.is_empty() {
        let cmd = staged_postconf("-e").words(&set);
        s.push_str(&staged_edit(&cmd, first, "postconf -e"));
    }
    let removed: Vec<&str> = edit
        .params
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !removed.is_empty() {
        let cmd = staged_postconf("-X").words(&removed);
        s.push_str(&staged_edit(&cmd, first, "postconf -X"));
    }
    if file == "main.cf" && !s.is_empty() {
        // The master.cf queries below and the validation read it: no cool-down pause.
        s.push_str("    pf_settle \"$PF_STAGE/main.cf\"\n");
    }
    for service in &edit.services {
        match master_line(service) {
            Some(line) => {
                let cmd = staged_postconf("-M").word(format!("{}={line}", service.key()));
                s.push_str(&staged_edit(&cmd, first, "postconf -M"));
            }
            None => {
                // Remove the entry only where the staged master.cf has it.
                let present = staged_postconf("-M").word(service.key());
                let cmd = staged_postconf("-MX").word(service.key());
                s.push_str(&format!(
                    "    [ -z \"$pf_failed\" ] && [ -n \"$({present} 2>/dev/null)\" ] && {{ out=$({cmd} 2>&1) || pf_fail {first} \"postconf -MX: $out\"; }}\n"
                ));
            }
        }
    }
    s
}

/// Stages main.cf and/or master.cf of one instance, applies the edits with postconf,
/// validates both together, then moves each changed file into place.
fn config_block(plan: &Plan, name: &InstanceName, group: &[usize]) -> String {
    let dir = config_dir(plan, name);
    let first = group[0];
    let stage_var = format!("PF_STAGE={}", quote(&format!("{dir}/.postfleet-stage")));
    let stage = Line::new().text("pf_stage").word(&dir);
    let cannot_stage = Line::new()
        .text("pf_fail")
        .word(first.to_string())
        .word(format!("cannot stage {dir}: "));
    let mut s = format!(
        "\n# steps {group:?}: {name} configuration\nif [ -z \"$pf_failed\" ]; then\n  {stage_var}\n  if ! out=$({stage} 2>&1); then {cannot_stage}\"$out\"; else\n"
    );
    for &index in group {
        let (file, edit) = match &plan.steps[index].action {
            Action::WriteMainCf(e) => ("main.cf", e),
            Action::WriteMasterCf(e) => ("master.cf", e),
            _ => unreachable!("config_block takes config steps only"),
        };
        s.push_str(&edit_commands(file, edit, first));
    }
    let validate = Line::new().text("pf_validate").word(&dir);
    s.push_str(&format!(
        "    if [ -z \"$pf_failed\" ]; then\n      if ! why=$({validate}); then\n        pf_fail {first} \"Postfix rejects the new configuration; nothing was changed: $why\"\n      else\n"
    ));
    for &index in group {
        let file = match plan.steps[index].action {
            Action::WriteMainCf(_) => "main.cf",
            _ => "master.cf",
        };
        let activate = Line::new().text("pf_activate_file").word(&dir).text(file);
        s.push_str(&format!(
            "        if r=$({activate} 2>&1); then\n          if [ \"$r\" = moved ]; then {}; else {}; fi\n        else pf_fail {index} \"cannot move {file} into place: $r\"; fi\n",
            report(index, "changed", &plan.steps[index].summary),
            report(index, "ok", "already in place")
        ));
    }
    s.push_str("      fi\n    fi\n    rm -rf \"$PF_STAGE\"\n  fi\nfi\n");
    s
}

/// The command that, run on the host after a connection was lost mid-apply, waits until the
/// apply has finished (it holds the host's lock until then) and prints what it recorded.
pub fn record_script() -> String {
    let state = crate::scripts::STATE_DIR;
    crate::scripts::script(
        [format!("{state}/lock"), format!("{state}/last-apply")],
        "flock -w 600 \"$1\" cat \"$2\"\n",
    )
}

/// The lines a finished apply recorded on the host, when the record is the one of the apply
/// planned at `planned_at` (its first line says which run made it).
pub fn read_record(output: &str, planned_at: u64) -> Option<Vec<&str>> {
    let mut lines = output.lines();
    let first = lines.next()?;
    (first == format!("@@run {}", planned_at + 1)).then(|| lines.collect())
}

/// A line the apply script printed, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptLine {
    Step {
        index: usize,
        status: StepStatus,
        message: String,
    },
    /// The script could not run at all (lock held, state dir not writable).
    Fatal(String),
    End,
}

pub fn parse_line(line: &str) -> Option<ScriptLine> {
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    };
    let mut words = line.split(' ');
    match words.next()? {
        "@@step" => {
            let index = words.next()?.parse().ok()?;
            let status = match words.next()? {
                "ok" => StepStatus::Ok,
                "changed" => StepStatus::Changed,
                _ => StepStatus::Failed,
            };
            Some(ScriptLine::Step {
                index,
                status,
                message: decode(words.next().unwrap_or("")),
            })
        }
        "@@error" => Some(ScriptLine::Fatal(decode(words.next().unwrap_or("")))),
        "@@end" => Some(ScriptLine::End),
        _ => None,
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn only_the_record_of_this_apply_is_read() {
        let text = "@@run 8\n@@step 0 changed eA==\n@@end\n";
        assert_eq!(
            read_record(text, 7),
            Some(vec!["@@step 0 changed eA==", "@@end"])
        );
        assert_eq!(read_record(text, 6), None, "another run's record");
        assert_eq!(read_record("", 7), None);
    }

    #[test]
    fn the_record_script_waits_for_the_lock_and_prints_the_record() {
        let script = record_script();
        assert!(
            script.starts_with("set -- /var/lib/postfleet/lock /var/lib/postfleet/last-apply\n")
        );
        assert!(script.ends_with("flock -w 600 \"$1\" cat \"$2\"\n"));
    }
}
