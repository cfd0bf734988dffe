//! Turns a host's plan into one shell script: the whole apply is one round trip.
//!
//! Every command line is a [`Line`]: values are quoted words or base64 words, and only fixed
//! `&'static str` text is left unquoted. The shell itself lives in prelude.sh as functions
//! (`pf_*`) that take their values as arguments; this module writes one call per step (the
//! main.cf/master.cf edits of an instance are one block of calls, staged and validated together).

use base64::Engine;

use crate::model::InstanceName;
use crate::plan::{mastercf, Action, ConfigEdit, Driver, Plan, Step};
use postfleet_shell::{quote, Line};

/// The apply's first lines; they and the recovery's check the state directory alike
/// (state.sh).
const PRELUDE: &str = concat!(
    include_str!("state.sh"),
    include_str!("../master_runs.sh"),
    include_str!("prelude.sh")
);
const TXN: &str = include_str!("txn.sh");
const RECOVER: &str = concat!(include_str!("state.sh"), include_str!("recover.sh"));
const GUARD: &str = include_str!("guard.sh");
/// The health gate after an activation (`pf_gate`, `pf_probe`): functions only.
const GATE: &str = include_str!("gate.sh");

/// The script for a plan. Step N of `plan.steps` reports as `@@step N ...`.
///
/// The steps run in a shell of their own session (`setsid`), read from a here-document,
/// under a supervisor shell that waits for it (guard.sh): when the steps' shell is killed
/// with an instance's transaction open, the supervisor puts that instance's files back at
/// once.
pub fn build(plan: &Plan, stamp: &crate::drift::Stamp) -> String {
    let mut dirs: Vec<String> = Vec::new();
    let mut paths: Vec<&str> = Vec::new();
    for step in &plan.steps {
        if let Action::WriteFile(file) = &step.action {
            paths.push(&file.path);
        }
        if let (true, Some(name)) = (in_transaction(&step.action), &step.instance) {
            let dir = config_dir(plan, name);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    supervised(
        crate::scripts::PREAMBLE,
        &steps_script(plan, stamp),
        &dirs,
        &paths,
    )
}

/// `steps` run by a shell in a session of its own, under the supervisor of guard.sh;
/// `dirs` are the config dirs of the transactions the steps open, `paths` the files they
/// write.
fn supervised(preamble: &str, steps: &str, dirs: &[String], paths: &[&str]) -> String {
    let mut end = String::from("PF_STEPS_END");
    while steps.lines().any(|line| line == end) {
        end.push('_');
    }
    let any_open = Line::new().text("pf_any_open").words(dirs);
    let put_back = Line::new()
        .text("pf_put_back")
        .words(dirs)
        .text("--")
        .words(paths);
    format!(
        "{preamble}trap '' HUP PIPE\nsetsid -w /bin/sh -s <<'{end}'\n{{\n{steps}}} </dev/null\n{end}\n\
         pf_rc=$?\n{TXN}{GUARD}{} || exit \"$pf_rc\"\n\
         exec 9>\"$PF_STATE/lock\" && flock -w 600 9 || exit \"$pf_rc\"\n{}\n",
        any_open.as_str(),
        put_back.as_str(),
    )
}

/// The steps of a plan, as the script the supervisor runs (see [`build`]).
fn steps_script(plan: &Plan, stamp: &crate::drift::Stamp) -> String {
    let mut s = format!(
        "{}PF_PLANNED_AT={}\n{PRELUDE}{TXN}{GATE}",
        crate::scripts::PREAMBLE,
        plan.generation
    );
    let push = |s: &mut String, line: Line| {
        s.push_str(line.as_str());
        s.push('\n');
    };
    // The cool-down reference of pf_settle, dated once per run, for the steps that need it.
    if plan.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::InitMultiInstance
                | Action::Create { .. }
                | Action::SetEnabled(_)
                | Action::WriteMainCf(_)
                | Action::WriteMasterCf(_)
        )
    }) {
        s.push_str("pf_settle_begin\n");
    }
    let mut txn: Option<InstanceName> = None;
    let mut i = 0;
    while i < plan.steps.len() {
        let step = &plan.steps[i];
        let instance = step.instance.as_ref();
        if in_transaction(&step.action) && txn.as_ref() != instance {
            push(&mut s, Line::new().text("pf_txn_close"));
            if let Some(name) = instance {
                let begin = Line::new()
                    .text("pf_txn_begin")
                    .word(config_dir(plan, name))
                    .word(name.as_str())
                    .text(owed_activation(plan, name).unwrap_or("-"));
                push(&mut s, begin);
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
        s.push_str(&format!("# step {i}: {title}\n"));
        push(&mut s, step_line(plan, i, step));
        if matches!(
            step.action,
            Action::Start | Action::Reload | Action::Restart
        ) && txn.as_ref() == instance
        {
            txn = None;
        }
        i += 1;
    }
    s.push_str("pf_txn_close\n");
    for line in record_lines(plan, stamp) {
        push(&mut s, line);
    }
    s.push_str("[ -z \"$pf_failed\" ] || exit 2\npf_emit @@end\n");
    s
}

/// `pf_applied NAME LAST FILE [TEXT]` for every record the plan leaves (prelude.sh): LAST is
/// the index of the instance's last step, -1 when it has none.
fn record_lines(plan: &Plan, stamp: &crate::drift::Stamp) -> Vec<Line> {
    plan.records
        .iter()
        .map(|due| {
            let last = plan
                .steps
                .iter()
                .rposition(|s| s.instance.as_ref() == Some(&due.instance))
                .map_or(-1, |i| i as i64);
            let line = Line::new()
                .text("pf_applied")
                .word(due.instance.as_str())
                .word(last.to_string())
                .word(crate::drift::record_file(&due.instance));
            match &due.items {
                Some(items) => line.word(
                    crate::drift::Record {
                        at: stamp.at,
                        generation: plan.generation + 1,
                        by: stamp.by.clone(),
                        items: items.clone(),
                    }
                    .render(),
                ),
                None => line,
            }
        })
        .collect()
}

/// Steps that change an instance's files: they run inside its transaction (txn.sh).
fn in_transaction(action: &Action) -> bool {
    matches!(
        action,
        Action::WriteMainCf(_)
            | Action::WriteMasterCf(_)
            | Action::WriteFile(_)
            | Action::Postmap { .. }
    )
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

/// `FUNCTION I BASE64(message)`: how every step's line starts. A message known when the
/// script is built is encoded here rather than by a base64 process on the host.
fn step_call(function: &'static str, i: usize, message: &str) -> Line {
    Line::new()
        .text(function)
        .word(i.to_string())
        .base64(message.as_bytes())
}

/// `pf_do I MESSAGE WHAT CMD...`: run one command (or prelude function), report the outcome;
/// a failure reads `WHAT: output`.
fn run_step(i: usize, message: &str, what: &str, command: Line) -> Line {
    step_call("pf_do", i, message).word(what).line(&command)
}

/// The one line of a step that is not a main.cf/master.cf edit.
fn step_line(plan: &Plan, i: usize, step: &Step) -> Line {
    let name = step
        .instance
        .clone()
        .unwrap_or_else(InstanceName::default_instance);
    let unit = match plan.drivers.get(&name) {
        Some(Driver::Systemd { unit }) => unit.clone(),
        // An empty unit tells the prelude's functions to use postmulti.
        Some(Driver::Postmulti) | None => String::new(),
    };
    let summary = step.summary.as_str();
    let dir = config_dir(plan, &name);
    let default_dir = config_dir(plan, &InstanceName::default_instance());
    let systemctl = |verb: &'static str, unit: &str| {
        let what = format!("systemctl {verb} {}", quote(unit));
        let command = Line::new().text("systemctl").text(verb).word(unit);
        run_step(i, summary, &what, command)
    };
    match &step.action {
        Action::InitMultiInstance => run_step(
            i,
            summary,
            "postmulti -e init",
            Line::new().text("pf_init").word(&default_dir),
        ),
        Action::Create { group } => {
            let mut what = format!("postmulti -I {}", quote(name.as_str()));
            if let Some(group) = group {
                what.push_str(&format!(" -G {}", quote(group)));
            }
            what.push_str(" -e create");
            let command = Line::new()
                .text("pf_create")
                .word(name.as_str())
                .word(group.as_deref().unwrap_or(""))
                .word(&default_dir)
                .word(&dir);
            run_step(i, summary, &what, command)
        }
        Action::SetEnabled(on) => {
            let verb = if *on { "enable" } else { "disable" };
            let what = format!("postmulti -i {} -e {verb}", quote(name.as_str()));
            let command = Line::new()
                .text("pf_set_enabled")
                .word(name.as_str())
                .text(verb)
                .word(&dir);
            run_step(i, summary, &what, command)
        }
        Action::DaemonReload => run_step(
            i,
            summary,
            "systemctl daemon-reload",
            Line::new().text("systemctl daemon-reload"),
        ),
        Action::EnableUnit => systemctl("enable", &unit),
        Action::DisableUnit => systemctl("disable", &unit),
        Action::DisableStaleUnit { unit: stale } => run_step(
            i,
            summary,
            &format!("systemctl disable --now {}", quote(stale)),
            Line::new().text("pf_disable_stale").word(stale),
        ),
        Action::PurgeQueue => run_step(
            i,
            summary,
            &format!("postmulti -i {} -x postsuper -d ALL", quote(name.as_str())),
            Line::new()
                .text("postmulti -i")
                .word(name.as_str())
                .text("-x postsuper -d ALL"),
        ),
        Action::Destroy => run_step(
            i,
            summary,
            &format!("postmulti -i {} -e destroy", quote(name.as_str())),
            Line::new().text("pf_destroy").word(name.as_str()),
        ),
        Action::WriteFile(file) => {
            let line = write_args(step_call("pf_write_step", i, summary), file);
            match file.map_type.as_ref().filter(|t| t.is_indexed()) {
                Some(map_type) => line.word(&dir).word(format!("{map_type}:{}", file.path)),
                None => line,
            }
        }
        Action::Postmap { path, map_type } => run_step(
            i,
            summary,
            "postmap",
            Line::new()
                .text("pf_postmap")
                .word(&dir)
                .word(format!("{map_type}:{path}")),
        ),
        Action::Stop => step_call("pf_stop", i, summary)
            .word(name.as_str())
            .word(&dir)
            .word(&unit),
        Action::Start | Action::Reload | Action::Restart => {
            let verb = match step.action {
                Action::Start => "start",
                Action::Reload => "reload",
                _ => "restart",
            };
            let mut line = step_call("pf_activate", i, summary)
                .text(verb)
                .word(name.as_str())
                .word(&dir)
                .word(&unit);
            // The playbook's checks, after the gate's own (gate.sh).
            for check in plan.checks.get(&name).into_iter().flatten() {
                line = match check {
                    crate::model::Check::Smtp { host, port, expect } => line
                        .text("smtp")
                        .word(host)
                        .word(port.to_string())
                        .word(expect.to_string()),
                    crate::model::Check::Command(command) => line.text("command").word(command),
                };
            }
            line
        }
        Action::WriteMainCf(_) | Action::WriteMasterCf(_) => {
            unreachable!("config steps are built by config_block")
        }
    }
}

/// `PATH MODE UMASK SUFFIX txt|b64 DATA`, the arguments of `pf_write` (prelude.sh): the temp
/// file's name suffix is chosen here; a mode without execute or special bits is given as the
/// umask that creates the file with it (no chmod); text without NUL is written by the shell's
/// own printf, anything else goes as base64.
fn write_args(line: Line, file: &crate::model::DesiredFile) -> Line {
    let umask = if file.mode & 0o7111 == 0 {
        format!("{:03o}", !file.mode & 0o777)
    } else {
        "-".to_string()
    };
    let line = line
        .word(&file.path)
        .word(format!("{:o}", file.mode))
        .word(umask)
        .word(temp_suffix(&file.path));
    match std::str::from_utf8(&file.content) {
        Ok(text) if !text.contains('\0') => line.text("txt").word(text),
        _ => line.text("b64").base64(&file.content),
    }
}

/// Six letters or digits for a temp file's name (`.postfleet-??????`), different for every
/// file and every run (the std hasher's keys are random per process).
fn temp_suffix(path: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(path.as_bytes());
    hasher.write_u64(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut n = hasher.finish();
    (0..6)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The edits of one staged file, as its part of the block's `pf_staged_edit` call
/// (prelude.sh): `FILE EDIT...`, the lines written as postconf writes them; None when the
/// file gets no edit. A whole new text (`base`) is staged first, by the `pf_stage_text` line
/// pushed on `stage`.
fn edit_words(
    file: &'static str,
    edit: &ConfigEdit,
    first: &str,
    stage: &mut Vec<Line>,
) -> Option<Line> {
    if let Some(base) = &edit.base {
        stage.push(
            Line::new()
                .text("pf_stage_text")
                .word(first)
                .text(file)
                .base64(base.as_bytes()),
        );
    }
    if edit.params.is_empty() && edit.services.is_empty() {
        return None;
    }
    let mut edits = Line::new().text(file);
    // postconf -e adds the parameters it did not find in the order of their names.
    let mut params: Vec<&(String, Option<String>)> = edit.params.iter().collect();
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, value) in params {
        edits = match value {
            Some(value) => edits.text("s").word(name).word(param_line(name, value)),
            None => edits.text("x").word(name),
        };
    }
    for service in &edit.services {
        edits = match &service.entry {
            Some(entry) => edits
                .text("s")
                .word(service.key())
                .word(mastercf::format_entry(&mastercf::desired_words(
                    service, entry,
                ))),
            None => edits.text("x").word(service.key()),
        };
    }
    Some(edits)
}

/// `name = value` as `postconf -e` writes it: the value without the blanks around it.
fn param_line(name: &str, value: &str) -> String {
    let value = value.trim_matches([' ', '\t', '\r', '\n', '\x0b', '\x0c']);
    format!("{name} = {value}")
}

/// Stages main.cf and/or master.cf of one instance, applies the edits of both (one awk, as
/// postconf makes them), validates both together, then moves the changed files into place
/// (one sync for their backups).
fn config_block(plan: &Plan, name: &InstanceName, group: &[usize]) -> String {
    let dir = config_dir(plan, name);
    let first = group[0].to_string();
    let mut s = format!("# steps {group:?}: {name} configuration\n");
    let begin = Line::new().text("pf_config_begin").word(&first).word(&dir);
    s.push_str(&format!("if {begin}; then\n"));
    let mut stage = Vec::new();
    let mut edit = Line::new().text("pf_staged_edit").word(&first);
    let mut edited = Vec::new();
    for &index in group {
        let (file, change) = match &plan.steps[index].action {
            Action::WriteMainCf(e) => ("main.cf", e),
            Action::WriteMasterCf(e) => ("master.cf", e),
            _ => unreachable!("config_block takes config steps only"),
        };
        if let Some(words) = edit_words(file, change, &first, &mut stage) {
            if !edited.is_empty() {
                edit = edit.text("--");
            }
            edit = edit.line(&words);
            edited.push(file);
        }
    }
    for line in stage {
        s.push_str(&format!("  {line}\n"));
    }
    if !edited.is_empty() {
        s.push_str(&format!("  {edit}\n"));
    }
    let main_cf_new = group
        .iter()
        .any(|&i| matches!(&plan.steps[i].action, Action::WriteMainCf(e) if e.base.is_some()));
    if main_cf_new || edited.contains(&"main.cf") {
        // The validation reads it: no cool-down pause.
        s.push_str("  pf_settle \"$PF_STAGE/main.cf\"\n");
    }
    let validate = Line::new()
        .text("pf_config_validate")
        .word(&first)
        .word(&dir);
    s.push_str(&format!("  if {validate}; then\n"));
    // master.cf moves first: the master reads it only when reloaded, while every new daemon
    // reads main.cf as it starts. An apply killed between the two renames leaves the old
    // configuration live (and its backup for the next run to put back).
    let mut moves = Line::new().text("pf_config_moves").word(&dir);
    for &index in group.iter().rev() {
        let file = match plan.steps[index].action {
            Action::WriteMainCf(_) => "main.cf",
            _ => "master.cf",
        };
        let step = &plan.steps[index];
        moves = moves
            .word(index.to_string())
            .base64(step.summary.as_bytes())
            .text(file);
    }
    s.push_str(&format!("    {moves}\n  fi\nfi\n"));
    s
}

/// The script that puts right what an interrupted apply left on a host
/// ([`HostFacts::needs_recovery`](crate::facts::HostFacts::needs_recovery)): it prints one line
/// per thing done.
pub fn recover_script(facts: &crate::facts::HostFacts) -> String {
    let args = facts
        .interrupted
        .iter()
        .map(String::as_str)
        .chain(["--"])
        .chain(facts.leftovers.iter().map(String::as_str));
    crate::scripts::script(args, &format!("{TXN}{RECOVER}"))
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

#[cfg(test)]
mod recover_tests {
    use super::*;

    fn running_as_root() -> bool {
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        String::from_utf8_lossy(&uid.stdout).trim() == "0"
    }

    /// A host in a temp dir: (its root, kept alive by the caller; the state dir; an
    /// instance's config dir; that instance's backup dir), all made.
    fn host_dirs() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::path::PathBuf,
        std::path::PathBuf,
    ) {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let dir = root.path().join("postfix-x");
        let backup = dir.join(".postfleet-backup");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&backup).unwrap();
        (root, state, dir, backup)
    }

    /// A state directory another user owns (e.g. a controller account's home on a host that
    /// is also managed), or one root owns that others or another group may write to, is
    /// refused by the apply and the recovery before anything is written in it; root's own,
    /// group root's to write too, is used.
    #[test]
    fn a_state_dir_that_is_not_roots_own_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        if !running_as_root() {
            eprintln!("skipped: needs root to hand the directory to another user");
            return;
        }
        // (owner, group, mode, used)
        let cases = [
            (65534, 65534, 0o755, false),
            (0, 0, 0o777, false),
            (0, 0, 0o1777, false),
            (0, 65534, 0o775, false),
            (0, 0, 0o775, true),
            (0, 65534, 0o755, true),
        ];
        for (owner, group, mode, used) in cases {
            for what in ["apply", "recovery"] {
                let dir = tempfile::tempdir().unwrap();
                let state = dir.path().join("state");
                std::fs::create_dir(&state).unwrap();
                std::os::unix::fs::chown(&state, Some(owner), Some(group)).unwrap();
                std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
                let body = match what {
                    "apply" => format!(
                        "PF_STATE={}\nPF_PLANNED_AT=0\n{PRELUDE}echo reached\n",
                        state.display()
                    ),
                    _ => format!("PF_STATE={}\n{TXN}{RECOVER}", state.display()),
                };
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&body)
                    .output()
                    .unwrap();
                let case = format!("{what}, owner {owner}, group {group}, mode {mode:o}");
                let said = String::from_utf8_lossy(&out.stdout);
                // Both take the host's lock there first.
                let wrote = std::fs::read_dir(&state).unwrap().next().is_some();
                if used {
                    assert!(out.status.success() && wrote, "{case}: {out:?}");
                    continue;
                }
                assert_eq!(out.status.code(), Some(3), "{case}: {out:?}");
                assert!(!wrote, "{case}: something was written");
                if what == "apply" {
                    assert!(
                        said.starts_with("@@error ") && !said.contains("reached"),
                        "{case}: {said}"
                    );
                }
            }
        }
    }

    /// `pf_applied` (prelude.sh), run by /bin/sh: a record is written only for an instance
    /// whose steps all came before the first failure and whose transaction was kept.
    #[test]
    fn records_are_written_only_for_instances_left_as_planned() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let body = format!(
            "PF_STATE={}\nPF_PLANNED_AT=0\n{PRELUDE}{TXN}\n\
             pf_applied postfix-a -1 postfix-a 'no step'\n\
             pf_fail 4 boom\n\
             pf_applied postfix-b 3 postfix-b 'before the failure'\n\
             pf_applied postfix-c 4 postfix-c 'failed'\n\
             pf_undone=' postfix-d '\n\
             pf_applied postfix-d 1 postfix-d 'taken back'\n\
             pf_applied postfix-e 2 postfix-e\n",
            state.display()
        );
        std::fs::create_dir_all(state.join("applied")).unwrap();
        std::fs::write(state.join("applied/postfix-e"), "old").unwrap();
        std::fs::write(state.join("applied/postfix-c"), "old").unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&body)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let read = |f: &str| std::fs::read_to_string(state.join("applied").join(f)).ok();
        assert_eq!(read("postfix-a").as_deref(), Some("no step"));
        assert_eq!(read("postfix-b").as_deref(), Some("before the failure"));
        assert_eq!(read("postfix-c").as_deref(), Some("old"));
        assert_eq!(read("postfix-d"), None);
        assert_eq!(
            read("postfix-e"),
            None,
            "a destroyed instance keeps no record"
        );
        let names: Vec<String> = std::fs::read_dir(state.join("applied"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    /// The transaction a failure takes back (pf_txn_close, txn.sh) leaves its instance no
    /// record, though its steps came before the failure; one closed before the failure
    /// gets its record: private, in a private directory.
    #[test]
    fn an_instance_whose_files_were_put_back_gets_no_record() {
        use std::os::unix::fs::PermissionsExt;
        let (_root, state, dir, _backup) = host_dirs();
        let kept = state.parent().unwrap().join("postfix-k");
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(dir.join("main.cf"), "old\n").unwrap();
        let body = format!(
            "PF_STATE={state}\nPF_PLANNED_AT=0\n{PRELUDE}{TXN}\n\
             pf_txn_begin {kept} postfix-k -\n\
             pf_write {kept}/main.cf 644 022 AAAAAA txt kept\n\
             pf_txn_close\n\
             pf_txn_begin {dir} postfix-x -\n\
             pf_write {dir}/main.cf 644 022 BBBBBB txt new\n\
             pf_fail 5 boom\n\
             pf_txn_close\n\
             pf_applied postfix-k 0 postfix-k 'kept'\n\
             pf_applied postfix-x 1 postfix-x 'put back'\n",
            state = state.display(),
            kept = kept.display(),
            dir = dir.display(),
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&body)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join("main.cf")).unwrap(),
            "old\n"
        );
        assert!(!state.join("applied/postfix-x").exists());
        let record = state.join("applied/postfix-k");
        assert_eq!(std::fs::read_to_string(&record).unwrap(), "kept");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&record), 0o600);
        assert_eq!(mode(&state.join("applied")), 0o700);
    }

    /// The recovery script, run by /bin/sh on plain files with `state` as its state dir.
    fn run_recovery(state: &std::path::Path, args: &[String]) -> std::process::Output {
        let body = format!("PF_STATE={}\n{TXN}{RECOVER}", state.display());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(postfleet_shell::with_args(args, &body))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out
    }

    /// An apply killed between two renames: main.cf's is done, master.cf's not, one table
    /// was created; a temp file and the scratch copy are left. The recovery (run here by
    /// /bin/sh on plain files, as on a host) puts every file back as it was.
    #[test]
    fn an_interrupted_transaction_is_put_back_whole() {
        let (_root, state, dir, backup) = host_dirs();
        std::fs::create_dir_all(dir.join(".postfleet-stage")).unwrap();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        std::fs::write(path("main.cf"), "new main\n").unwrap();
        std::fs::write(path("master.cf"), "old master\n").unwrap();
        std::fs::write(path("relay"), "new table\n").unwrap();
        std::fs::write(path("transport.postfleet-Ab12Cd"), "half").unwrap();
        std::fs::write(backup.join("0"), "old main\n").unwrap();
        std::fs::write(
            backup.join("list"),
            format!("k {}\nn {}\n", path("main.cf"), path("relay")),
        )
        .unwrap();
        let dir_arg = dir.to_string_lossy().into_owned();
        let args = [
            dir_arg.clone(),
            "--".into(),
            format!("{dir_arg}/.postfleet-stage"),
            path("transport.postfleet-Ab12Cd"),
            // not a name postfleet makes: never removed
            path("master.cf"),
        ];
        let out = run_recovery(&state, &args);
        let read = |name: &str| std::fs::read_to_string(path(name)).ok();
        assert_eq!(read("main.cf").as_deref(), Some("old main\n"));
        assert_eq!(read("master.cf").as_deref(), Some("old master\n"));
        assert_eq!(read("relay"), None, "created by the interrupted apply");
        assert_eq!(read("transport.postfleet-Ab12Cd"), None);
        assert!(!backup.exists() && !dir.join(".postfleet-stage").exists());
        assert_eq!(
            std::fs::read_to_string(state.join("generation")).unwrap(),
            "1\n",
            "the host changed: plans made before are stale"
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("put back the files it replaced in"), "{said}");
    }

    /// A config block's shell, without the validation (that needs Postfix): one awk edits
    /// both staged files, the changed ones are moved into place after their backups, a file
    /// the edits leave as it was is reported in place, and the stage and the backup go with
    /// the transaction. Run in this shell, a function must not end it: a table in a directory
    /// that is not there fails its step and the script goes on to its end.
    #[test]
    fn a_config_block_edits_both_files_and_moves_the_changed_ones() {
        if !running_as_root() {
            eprintln!("skipped: the apply uses a state dir that is root's own");
            return;
        }
        let (_root, state, dir, _backup) = host_dirs();
        std::fs::remove_dir(dir.join(".postfleet-backup")).unwrap();
        let main_cf = "a = 1\n# kept\nb = 2\n    continued\n";
        let master_cf = "smtp inet n - y - - smtpd\n  -o x=y\npickup unix n - y 60 1 pickup\n";
        std::fs::write(dir.join("main.cf"), main_cf).unwrap();
        std::fs::write(dir.join("master.cf"), master_cf).unwrap();
        let d = quote(&dir.to_string_lossy());
        let m = |text: &str| postfleet_shell::base64_word(text.as_bytes());
        let block = |edits: &str| {
            format!(
                "pf_txn_begin {d} x -\nif pf_config_begin 3 {d}; then\n  pf_staged_edit 3 {edits}\n  \
                 pf_config_moves {d} 4 {} master.cf 3 {} main.cf\nfi\npf_txn_close\n",
                m("master"),
                m("main")
            )
        };
        let run = |body: String| {
            let script = format!(
                "PF_STATE={}\nPF_PLANNED_AT={}\n{PRELUDE}{TXN}{body}echo reached\n",
                state.display(),
                std::fs::read_to_string(state.join("generation"))
                    .map(|g| g.trim().to_string())
                    .unwrap_or_else(|_| "0".into())
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(said.ends_with("reached\n"), "{out:?}");
            said
        };
        let said = run(block(
            "main.cf s b 'b = 3' s c 'c = 4' -- master.cf x smtp/inet s new/unix 'new unix - - n - - smtp'",
        ));
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("main.cf"), "a = 1\n# kept\nb = 3\nc = 4\n");
        assert_eq!(
            read("master.cf"),
            "pickup unix n - y 60 1 pickup\nnew unix - - n - - smtp\n"
        );
        assert!(
            said.contains(&format!("@@step 4 changed {}\n", m("master")))
                && said.contains(&format!("@@step 3 changed {}\n", m("main"))),
            "{said}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        // Only main.cf changes: master.cf is in place already.
        let said = run(block(
            "main.cf s a 'a = 0' -- master.cf s new/unix 'new unix - - n - - smtp'",
        ));
        assert_eq!(read("main.cf"), "a = 0\n# kept\nb = 3\nc = 4\n");
        assert!(
            said.contains(&format!("@@step 3 changed {}\n", m("main")))
                && said.contains(&format!("@@step 4 ok {}\n", m("already in place"))),
            "{said}"
        );
        // A write that cannot be made fails its step; the script still reaches its end.
        let missing = dir.join("nowhere/table");
        let said = run(format!(
            "pf_txn_begin {d} x -\npf_write_step 7 {} {} 644 133 Ab12Cd txt 'x'\npf_txn_close\n",
            m("table"),
            quote(&missing.to_string_lossy())
        ));
        assert!(said.contains("@@step 7 failed "), "{said}");
    }

    /// An apply killed while it removed a committed backup (its list goes first): what is
    /// left is removed, nothing is put back over the live files.
    #[test]
    fn a_committed_backup_is_only_removed() {
        let (_root, state, dir, backup) = host_dirs();
        std::fs::write(dir.join("main.cf"), "new main\n").unwrap();
        std::fs::write(backup.join("0"), "old main\n").unwrap();
        run_recovery(&state, &[dir.to_string_lossy().into_owned(), "--".into()]);
        assert_eq!(
            std::fs::read_to_string(dir.join("main.cf")).unwrap(),
            "new main\n"
        );
        assert!(!backup.exists());
    }

    /// The steps' shell killed, with its whole process group, between two renames of one
    /// instance: its supervisor (another process group) puts the instance back at once and
    /// says so; the lock is free afterwards.
    #[test]
    fn a_killed_steps_shell_is_put_right_by_its_supervisor() {
        let (_root, state, dir, _backup) = host_dirs();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        std::fs::write(path("main.cf"), "old main\n").unwrap();
        std::fs::write(path("transport"), "old table\n").unwrap();
        let preamble = format!("PF_STATE={}\n", state.display());
        let write = |name: &str, text: &str| {
            Line::new()
                .text("pf_write")
                .word(path(name))
                .text("644 133")
                .word(super::temp_suffix(name))
                .text("b64")
                .base64(text.as_bytes())
                .build()
        };
        let steps = format!(
            "{preamble}PF_PLANNED_AT=0\n{PRELUDE}{TXN}{}\n{}\n{}\nkill -s KILL 0\n{}\n",
            Line::new()
                .text("pf_txn_begin")
                .word(dir.to_string_lossy())
                .text("x reload")
                .build(),
            write("transport", "new table\n"),
            write("relay", "new relay\n"),
            write("main.cf", "new main\n"),
        );
        let dirs = [dir.to_string_lossy().into_owned()];
        let script = supervised(
            &preamble,
            &steps,
            &dirs,
            &[&path("transport"), &path("relay")],
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let read = |name: &str| std::fs::read_to_string(path(name)).ok();
        assert_eq!(read("transport").as_deref(), Some("old table\n"));
        assert_eq!(read("relay"), None, "created by the killed steps");
        assert_eq!(read("main.cf").as_deref(), Some("old main\n"));
        assert!(!dir.join(".postfleet-backup").exists());
        let said = String::from_utf8_lossy(&out.stdout);
        let error = said
            .lines()
            .find_map(|l| {
                parse_line(l).and_then(|p| match p {
                    ScriptLine::Fatal(text) => Some(text),
                    _ => None,
                })
            })
            .unwrap_or_else(|| panic!("no error line: {said}"));
        assert!(
            error.contains("killed on the host") && error.contains("put back"),
            "{error}"
        );
        let record = std::fs::read_to_string(state.join("last-apply")).unwrap();
        assert!(
            record.lines().last().unwrap().starts_with("@@error "),
            "{record}"
        );
        let lock = std::fs::File::create(state.join("lock")).unwrap();
        assert!(lock.try_lock().is_ok(), "the lock is free again");
    }

    /// Steps that end normally leave the supervisor nothing to do: it exits with their status.
    #[test]
    fn the_supervisor_passes_on_the_steps_status() {
        let (_root, state, dir, _backup) = host_dirs();
        let preamble = format!("PF_STATE={}\n", state.display());
        let dirs = [dir.to_string_lossy().into_owned()];
        for (steps, code) in [("echo done\n", 0), ("exit 2\n", 2)] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(supervised(&preamble, steps, &dirs, &[]))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{out:?}");
        }
    }
}

#[cfg(test)]
mod gate_tests {
    use super::GATE;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// pf_probe against a listener on 127.0.0.1 that does `serve` with each connection:
    /// (exit code, what it printed).
    fn probe(expect: &str, serve: fn(std::net::TcpStream)) -> (i32, String) {
        probe_with("pf_probe", expect, serve)
    }

    fn probe_with(function: &str, expect: &str, serve: fn(std::net::TcpStream)) -> (i32, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let server = std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                serve(stream);
            }
        });
        let script = format!("{GATE}{function} 127.0.0.1 \"$1\" \"$2\"\n");
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh", &port, expect])
            .output()
            .unwrap();
        let _ = server.join();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// pf_entries on TEXT: (its status, the entries it left).
    fn entries(text: &str) -> (bool, String) {
        let script =
            format!("PF_NL='\n'\nPF_CR=$(printf '\\r')\n{GATE}pf_entries \"$1\"\nr=$?\nprintf '%s' \"$pf_entries\"\nexit $r\n");
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh", text])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// master.cf's entries for the gate, read from the text validation read: one line per
    /// entry, its continuation lines joined, blank lines left out; a `$name` or braces in
    /// a unix entry are no matter (the gate reads inet entries only).
    #[test]
    fn master_cf_entries_are_read_with_their_continuation_lines() {
        let text = "smtp      inet  n       -       y       -       -       smtpd\n  \
                    -o smtpd_tls_wrappermode=yes\n\n\t-o x=y\n\
                    maildrop  unix  -       n       n       -       -       pipe\n  \
                    flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n\
                    [::1]:2526 inet n - - - - smtpd\n";
        assert_eq!(
            entries(text),
            (
                true,
                "smtp      inet  n       -       y       -       -       smtpd   \
                 -o smtpd_tls_wrappermode=yes \t-o x=y\n\
                 maildrop  unix  -       n       n       -       -       pipe   \
                 flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n\
                 [::1]:2526 inet n - - - - smtpd\n"
                    .into()
            )
        );
        assert_eq!(entries(""), (true, String::new()));
    }

    /// What postconf -x -M would expand or rewrite in an inet entry, and a CR anywhere, are
    /// left to postconf.
    #[test]
    fn master_cf_entries_postconf_must_read_are_refused() {
        for text in [
            "smtps inet n - y - - smtpd\n  -o smtpd_tls_wrappermode=$wrap\n",
            "smtps inet n - y - - smtpd\n  -o { smtpd_tls_wrappermode = yes }\n",
            "pickup unix n - y 60 1 pickup\r\n",
        ] {
            assert_eq!(entries(text), (false, String::new()), "{text:?}");
        }
    }

    #[test]
    fn a_listener_must_greet_with_220() {
        let greets = |mut s: std::net::TcpStream| {
            s.write_all(b"220 mx.example ESMTP\r\n").unwrap();
            let _ = s.read(&mut [0; 64]);
        };
        assert_eq!(probe("220", greets), (0, String::new()));
        let refuses = |mut s: std::net::TcpStream| {
            s.write_all(b"554 go away\r\n").unwrap();
        };
        let (code, said) = probe("220", refuses);
        assert_eq!(code, 1);
        assert!(
            said.contains("answered \"554 go away\" instead of 220"),
            "{said}"
        );
        let (code, said) = probe("220", drop);
        assert_eq!(code, 1);
        assert!(said.contains("connection closed before greeting"), "{said}");
        // Not an SMTP service: accepting the connection is enough.
        assert_eq!(probe("-", drop).0, 0);
        // Hosts without bash: perl, with the same verdicts.
        assert_eq!(
            probe_with("pf_probe_perl", "220", greets),
            (0, String::new())
        );
        let (code, said) = probe_with("pf_probe_perl", "220", refuses);
        assert_eq!(code, 1);
        assert!(said.contains("instead of 220"), "{said}");
    }

    /// Every listener of an instance, probed by one process: the first that fails is named.
    #[test]
    fn listeners_are_probed_together() {
        let greeting = |mut s: std::net::TcpStream| {
            s.write_all(b"220 ok\r\n").unwrap();
            let _ = s.read(&mut [0; 64]);
        };
        let mut ports = Vec::new();
        let mut servers = Vec::new();
        for serve in [greeting, greeting, drop] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            ports.push(listener.local_addr().unwrap().port().to_string());
            servers.push(std::thread::spawn(move || {
                if let Ok((stream, _)) = listener.accept() {
                    serve(stream);
                }
            }));
        }
        let script = format!(
            "{GATE}pf_probe 127.0.0.1 \"$1\" 220 127.0.0.1 \"$2\" - 127.0.0.1 \"$3\" 220\n"
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh", &ports[0], &ports[1], &ports[2]])
            .output()
            .unwrap();
        for server in servers {
            let _ = server.join();
        }
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            said.trim(),
            format!("127.0.0.1:{}: connection closed before greeting", ports[2])
        );
    }
}

#[cfg(test)]
mod master_runs_tests {
    use std::path::Path;
    use std::process::{Child, Command};

    const MASTER_RUNS: &str = include_str!("../master_runs.sh");

    /// pf_master_runs QUEUE DAEMONS in sh: does it say a master runs?
    fn says_running(queue: &Path, daemons: &Path) -> bool {
        let script = format!("{MASTER_RUNS}pf_master_runs \"$1\" \"$2\" /nonexistent\n");
        Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(queue)
            .arg(daemons)
            .status()
            .unwrap()
            .success()
    }

    /// A process named `master` (sleep, run through a link of that name) working in `cwd`.
    fn fake_master(bin: &Path, cwd: &Path) -> Child {
        Command::new(bin.join("master"))
            .arg("60")
            .current_dir(cwd)
            .spawn()
            .unwrap()
    }

    fn write_pid(queue: &Path, pid: u32) {
        // As the master writes it: right-aligned in a fixed width.
        std::fs::write(queue.join("pid/master.pid"), format!("{pid:>32}\n")).unwrap();
    }

    #[test]
    fn a_running_master_is_seen_in_proc_and_anything_else_is_left_to_master_t() {
        let tmp = tempfile::tempdir().unwrap();
        let (queue, bin) = (tmp.path().join("queue"), tmp.path().join("bin"));
        // Two daemon directories whose `master -t` says "running" (false: exit 1) and "not
        // running" (true: exit 0). Links to programs that exist: a script written here could
        // not be run while another test's fork still holds it open (ETXTBSY).
        let (says_yes, says_no) = (tmp.path().join("yes"), tmp.path().join("no"));
        for dir in [&queue.join("pid"), &bin, &says_yes, &says_no] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::os::unix::fs::symlink("/bin/false", says_yes.join("master")).unwrap();
        std::os::unix::fs::symlink("/bin/true", says_no.join("master")).unwrap();
        // (a link: the name a program is run by is its name in /proc)
        std::os::unix::fs::symlink("/bin/sleep", bin.join("master")).unwrap();
        // Every case but the first is decided by `master -t`: it answers either way.
        let left_to_master_t = |what: &str| {
            assert!(
                says_running(&queue, &says_yes),
                "{what}: master -t says running"
            );
            assert!(
                !says_running(&queue, &says_no),
                "{what}: master -t says not"
            );
        };

        // /proc's verdict: the fallback would say "not running".
        let mut live = fake_master(&bin, &queue);
        write_pid(&queue, live.id());
        assert!(says_running(&queue, &says_no));
        // Without the daemon directory's master there is no instance to run.
        assert!(!says_running(&queue, tmp.path()));

        std::fs::write(queue.join("pid/master.pid"), "").unwrap();
        left_to_master_t("an empty pid file");
        std::fs::remove_file(queue.join("pid/master.pid")).unwrap();
        left_to_master_t("no pid file");
        write_pid(&queue, live.id());
        live.kill().unwrap();
        live.wait().unwrap();
        left_to_master_t("a stale PID");

        let mut other = Command::new("sleep").arg("60").spawn().unwrap();
        write_pid(&queue, other.id());
        left_to_master_t("a PID another program has");
        other.kill().unwrap();
        other.wait().unwrap();

        let mut elsewhere = fake_master(&bin, tmp.path());
        write_pid(&queue, elsewhere.id());
        left_to_master_t("a master working elsewhere");
        elsewhere.kill().unwrap();
        elsewhere.wait().unwrap();
    }
}
