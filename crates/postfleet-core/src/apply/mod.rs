//! Turns a host's plan into one shell script: the whole apply is one round trip.
//!
//! Every value that reaches the shell is quoted (or base64) here; the fixed shell
//! functions live in prelude.sh.

use base64::Engine;

use crate::model::{InstanceName, MasterService};
use crate::plan::{mastercf, Action, ConfigEdit, Driver, Plan, Step};
use postfleet_shell::quote as q;

const PRELUDE: &str = include_str!("prelude.sh");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A message known when the script is built, base64-encoded here (for `pf_report64`) rather
/// than by a base64 process on the host.
fn b64q(message: &str) -> String {
    q(&b64(message.as_bytes()))
}

/// The script for a plan. Step N of `plan.steps` reports as `@@step N ...`.
pub fn build(plan: &Plan) -> String {
    let mut s = format!("{}{PRELUDE}", crate::scripts::PREAMBLE);
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
            s.push_str("pf_txn_end\n");
            if let Some(name) = instance {
                s.push_str(&format!(
                    "[ -z \"$pf_failed\" ] && pf_txn_begin {} {} {}\n",
                    q(&config_dir(plan, name)),
                    q(name.as_str()),
                    owed_activation(plan, name).unwrap_or("-")
                ));
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
        s.push_str(&format!(
            "\n# step {i}: {}\nif [ -z \"$pf_failed\" ]; then\n",
            step.title()
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
    s.push_str("pf_txn_end\n[ -z \"$pf_failed\" ] || exit 2\nprintf '@@end\\n'\n");
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

fn report_ok_or_fail(i: usize, command: &str, ok_message: &str, what: &str) -> String {
    format!(
        "  if out=$({command} 2>&1); then pf_report64 {i} changed {}; else pf_fail {i} {}\"$out\"; fi\n",
        b64q(ok_message),
        q(&format!("{what}: "))
    )
}

/// `pf_settle` on the main.cf of each config dir: postmulti -e just rewrote them, and the
/// next Postfix program to read one would otherwise pause for up to two seconds.
fn settle_main_cf(config_dirs: &[&str]) -> String {
    let files: Vec<String> = config_dirs
        .iter()
        .map(|dir| q(&format!("{dir}/main.cf")))
        .collect();
    format!("pf_settle {}", files.join(" "))
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

fn postmulti(name: &InstanceName, args: &str) -> String {
    format!("postmulti -i {} {args}", q(name.as_str()))
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
    match &step.action {
        Action::InitMultiInstance => {
            let cmd = "postmulti -e init";
            let settle = settle_main_cf(&[&config_dir(plan, &InstanceName::default_instance())]);
            report_ok_or_fail(i, &format!("{{ {cmd} && {settle}; }}"), summary, cmd)
        }
        Action::Create { group } => {
            let group_arg = group
                .as_ref()
                .map(|g| format!(" -G {}", q(g)))
                .unwrap_or_default();
            let cmd = format!("postmulti -I {}{group_arg} -e create", q(name.as_str()));
            // postmulti records the new instance in the default instance's main.cf too.
            let settle = settle_main_cf(&[
                &config_dir(plan, &InstanceName::default_instance()),
                &config_dir(plan, &name),
            ]);
            report_ok_or_fail(i, &format!("{{ {cmd} && {settle}; }}"), summary, &cmd)
        }
        Action::SetEnabled(on) => {
            let cmd = postmulti(&name, if *on { "-e enable" } else { "-e disable" });
            let settle = settle_main_cf(&[&config_dir(plan, &name)]);
            report_ok_or_fail(i, &format!("{{ {cmd} && {settle}; }}"), summary, &cmd)
        }
        Action::DaemonReload => report_ok_or_fail(
            i,
            "systemctl daemon-reload",
            summary,
            "systemctl daemon-reload",
        ),
        Action::EnableUnit => {
            let cmd = format!("systemctl enable {}", q(&unit));
            report_ok_or_fail(i, &cmd, summary, &cmd)
        }
        Action::DisableUnit => {
            let cmd = format!("systemctl disable {}", q(&unit));
            report_ok_or_fail(i, &cmd, summary, &cmd)
        }
        Action::DisableStaleUnit { unit: stale } => {
            // --now: should it run after all, stop it; reset-failed: forget its failed boots.
            let cmd = format!("systemctl disable --now {}", q(stale));
            let body = format!(
                "{{ {cmd} && {{ systemctl reset-failed {} 2>/dev/null || :; }}; }}",
                q(stale)
            );
            report_ok_or_fail(i, &body, summary, &cmd)
        }
        Action::PurgeQueue => {
            let cmd = postmulti(&name, "-x postsuper -d ALL");
            report_ok_or_fail(i, &cmd, summary, &cmd)
        }
        Action::Destroy => {
            let cmd = postmulti(&name, "-e destroy");
            format!(
                "  if out=$({cmd} 2>&1); then rm -f \"$PF_STATE/pending/\"{n}; pf_report64 {i} changed {s}; else pf_fail {i} {w}\"$out\"; fi\n",
                n = q(name.as_str()),
                s = b64q(summary),
                w = q(&format!("{cmd}: "))
            )
        }
        Action::WriteFile(file) => {
            let dir = config_dir(plan, &name);
            let mut body = format!(
                "  if out=$(pf_write {} {:o} {} 2>&1); then\n",
                q(&file.path),
                file.mode,
                q(&b64(&file.content))
            );
            match file.map_type.as_deref().filter(|t| crate::plan::is_indexed_map(t)) {
                Some(map_type) => body.push_str(&format!(
                    "    if out=$(pf_postmap {} {} 2>&1); then pf_report64 {i} changed {}; else pf_fail {i} {}\"$out\"; fi\n",
                    q(&dir),
                    q(&format!("{map_type}:{}", file.path)),
                    b64q(summary),
                    q("postmap: ")
                )),
                None => body.push_str(&format!("    pf_report64 {i} changed {}\n", b64q(summary))),
            }
            body.push_str(&format!(
                "  else pf_fail {i} {}\"$out\"; fi\n",
                q(&format!("cannot write {}: ", file.path))
            ));
            body
        }
        Action::Postmap { path, map_type } => {
            let cmd = format!(
                "pf_postmap {} {}",
                q(&config_dir(plan, &name)),
                q(&format!("{map_type}:{path}"))
            );
            report_ok_or_fail(i, &cmd, summary, "postmap")
        }
        Action::Stop => {
            let stop = match driver {
                // A master started by hand is not the unit's: stop it with postmulti too.
                Driver::Systemd { .. } => format!(
                    "systemctl stop {}; ! {} || {}",
                    q(&unit),
                    running(plan, &name),
                    postmulti(&name, "-p stop"),
                ),
                Driver::Postmulti => format!("pf_tty {}", postmulti(&name, "-p stop")),
            };
            format!(
                "  out=$( {{ {stop}; }} 2>&1)\n  if {running}; then pf_fail {i} {w}\"$out\"; else rm -f \"$PF_STATE/pending/\"{n}; pf_report64 {i} changed {s}; fi\n",
                running = running(plan, &name),
                n = q(name.as_str()),
                s = b64q(summary),
                w = q("still running after stop: ")
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

/// `pf_running` for an instance: is its master process up?
fn running(plan: &Plan, name: &InstanceName) -> String {
    format!("pf_running {}", q(&config_dir(plan, name)))
}

fn activation_command(
    plan: &Plan,
    action: &Action,
    name: &InstanceName,
    driver: &Driver,
) -> String {
    match (driver, action) {
        (Driver::Systemd { unit }, Action::Start) => format!("systemctl start {}", q(unit)),
        (Driver::Systemd { unit }, Action::Reload) => format!("systemctl reload {}", q(unit)),
        (Driver::Systemd { unit }, _) => format!("systemctl restart {}", q(unit)),
        (Driver::Postmulti, Action::Start) => format!("pf_tty {}", postmulti(name, "-p start")),
        (Driver::Postmulti, Action::Reload) => format!("pf_tty {}", postmulti(name, "-p reload")),
        (Driver::Postmulti, _) => format!(
            "{{ ! {} || pf_tty {}; }} && pf_tty {}",
            running(plan, name),
            postmulti(name, "-p stop"),
            postmulti(name, "-p start")
        ),
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
        Action::Reload => format!(
            "{{ {running} && {} || {}; }}",
            activation_command(plan, &Action::Reload, name, driver),
            activation_command(plan, &Action::Start, name, driver),
        ),
        _ => activation_command(plan, &Action::Restart, name, driver),
    };
    let n = q(name.as_str());
    format!(
        r#"  if out=$( {{ {cmd}; }} 2>&1) && {running}; then
    rm -f "$PF_STATE/pending/"{n}; pf_txn_end; pf_report64 {i} changed {summary}
  else
    why=$(pf_why {n} {unit_q})
    if [ -n "$PF_TXN" ] && [ -s "$PF_TXN/list" ]; then
      pf_restore {dir}
      recover=$( {{ {recover}; }} 2>&1)
      if {running}; then
        rm -f "$PF_STATE/pending/"{n}
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
        summary = b64q(&step.summary),
        unit_q = q(unit),
        dir = q(&config_dir(plan, name)),
        verb = match step.action {
            Action::Start => "start",
            Action::Reload => "reload",
            _ => "restart",
        },
    )
}

fn master_line(service: &MasterService) -> Option<String> {
    service
        .entry
        .as_ref()
        .map(|e| mastercf::desired_words(service, e).join(" "))
}

fn edit_commands(file: &str, edit: &ConfigEdit, first: usize) -> String {
    let mut s = String::new();
    if let Some(base) = &edit.base {
        s.push_str(&format!(
            "    printf '%s' {} | base64 -d > \"$PF_STAGE/{file}\" || pf_fail {first} {}\n",
            q(&b64(base.as_bytes())),
            q(&format!("cannot stage {file}"))
        ));
    }
    let set: Vec<String> = edit
        .params
        .iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| q(&format!("{n}={v}"))))
        .collect();
    if !set.is_empty() {
        s.push_str(&format!(
            "    [ -z \"$pf_failed\" ] && {{ out=$(postconf -c \"$PF_STAGE\" -e {} 2>&1) || pf_fail {first} \"postconf -e: $out\"; }}\n",
            set.join(" ")
        ));
    }
    let removed: Vec<String> = edit
        .params
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| q(n))
        .collect();
    if !removed.is_empty() {
        s.push_str(&format!(
            "    [ -z \"$pf_failed\" ] && {{ out=$(postconf -c \"$PF_STAGE\" -X {} 2>&1) || pf_fail {first} \"postconf -X: $out\"; }}\n",
            removed.join(" ")
        ));
    }
    if file == "main.cf" && !s.is_empty() {
        // The master.cf queries below and the validation read it: no cool-down pause.
        s.push_str("    pf_settle \"$PF_STAGE/main.cf\"\n");
    }
    for service in &edit.services {
        let key = q(&service.key());
        match master_line(service) {
            Some(line) => s.push_str(&format!(
                "    [ -z \"$pf_failed\" ] && {{ out=$(postconf -c \"$PF_STAGE\" -M {} 2>&1) || pf_fail {first} \"postconf -M: $out\"; }}\n",
                q(&format!("{}={line}", service.key()))
            )),
            None => s.push_str(&format!(
                "    [ -z \"$pf_failed\" ] && [ -n \"$(postconf -c \"$PF_STAGE\" -M {key} 2>/dev/null)\" ] && {{ out=$(postconf -c \"$PF_STAGE\" -MX {key} 2>&1) || pf_fail {first} \"postconf -MX: $out\"; }}\n"
            )),
        }
    }
    s
}

/// Stages main.cf and/or master.cf of one instance, applies the edits with postconf,
/// validates both together, then moves each changed file into place.
fn config_block(plan: &Plan, name: &InstanceName, group: &[usize]) -> String {
    let dir = config_dir(plan, name);
    let first = group[0];
    let mut s = format!(
        "\n# steps {group:?}: {name} configuration\nif [ -z \"$pf_failed\" ]; then\n  PF_STAGE={stage}\n  if ! out=$(pf_stage {d} 2>&1); then pf_fail {first} \"cannot stage {dir}: $out\"; else\n",
        d = q(&dir),
        stage = q(&format!("{dir}/.postfleet-stage"))
    );
    for &index in group {
        let (file, edit) = match &plan.steps[index].action {
            Action::WriteMainCf(e) => ("main.cf", e),
            Action::WriteMasterCf(e) => ("master.cf", e),
            _ => unreachable!("config_block takes config steps only"),
        };
        s.push_str(&edit_commands(file, edit, first));
    }
    s.push_str(&format!(
        "    if [ -z \"$pf_failed\" ]; then\n      if ! why=$(pf_validate {d}); then\n        pf_fail {first} \"Postfix rejects the new configuration; nothing was changed: $why\"\n      else\n",
        d = q(&dir)
    ));
    for &index in group {
        let file = match plan.steps[index].action {
            Action::WriteMainCf(_) => "main.cf",
            _ => "master.cf",
        };
        s.push_str(&format!(
            "        if r=$(pf_activate_file {d} {file} 2>&1); then\n          if [ \"$r\" = moved ]; then pf_report64 {index} changed {sum}; else pf_report64 {index} ok {same}; fi\n        else pf_fail {index} \"cannot move {file} into place: $r\"; fi\n",
            d = q(&dir),
            sum = b64q(&plan.steps[index].summary),
            same = b64q("already in place")
        ));
    }
    s.push_str("      fi\n    fi\n    rm -rf \"$PF_STAGE\"\n  fi\nfi\n");
    s
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
