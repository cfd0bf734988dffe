//! The pure planner: desired state + facts -> ordered steps with diffs. No I/O here;
//! this is where idempotency lives.

pub mod changes;
pub mod maincf;
pub mod mastercf;

use std::collections::BTreeMap;

use crate::facts::{ActiveState, HostFacts, InitSystem, InstanceFacts, Owed, UnitFileState};
use crate::model::{
    DesiredFile, DesiredHost, DesiredInstance, InstanceName, InstanceState, MapType, MasterService,
    ServiceType,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Destroy an absent instance even when its queue holds mail (the mail is deleted).
    pub force: bool,
}

/// How the host's service manager drives an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// `systemctl ... UNIT`.
    Systemd { unit: String },
    /// `postmulti -i NAME -p start|stop|reload`.
    Postmulti,
}

/// Edits to main.cf or master.cf, applied on a staged copy with postconf itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEdit {
    /// A whole-file template that replaces the live file before the edits.
    pub base: Option<String>,
    /// main.cf: parameters to set (Some) or remove (None), only those that differ.
    pub params: Vec<(String, Option<String>)>,
    /// master.cf: entries to set or remove, only those that differ.
    pub services: Vec<MasterService>,
}

/// A file's content before and after, for diffs (rendered by the reporter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    /// None: the file does not exist yet (or the instance does not).
    pub old: Option<String>,
    pub new: String,
    /// Marked `secret: true`: no line of it is ever shown.
    pub secret: bool,
    pub format: FileFormat,
}

/// How a changed file is read for showing it: what in it may be secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Shown as it is (unless the whole file is secret).
    Plain,
    /// Values of secret-looking parameters hidden.
    MainCf,
    /// Secret-looking `name=value` service arguments hidden.
    MasterCf,
}

impl FileChange {
    /// (old, new) as they may be shown, or None when nothing of the file may be.
    pub fn shown(&self) -> Option<(String, String)> {
        if self.secret {
            return None;
        }
        let old = self.old.as_deref().unwrap_or("");
        Some(match self.format {
            FileFormat::Plain => (old.to_string(), self.new.clone()),
            FileFormat::MainCf => crate::secrets::redact_main_cf(old, &self.new),
            FileFormat::MasterCf => crate::secrets::redact_master_cf(old, &self.new),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `postmulti -e init`.
    InitMultiInstance,
    /// `postmulti -I NAME [-G GROUP] -e create`.
    Create {
        group: Option<String>,
    },
    /// `postmulti -i NAME -e enable|disable`.
    SetEnabled(bool),
    /// Stage main.cf, validate with postconf, move into place.
    WriteMainCf(ConfigEdit),
    /// Stage master.cf, validate with postconf, move into place.
    WriteMasterCf(ConfigEdit),
    /// Write a whole file atomically (then `postmap` it when it is a table of an indexed type).
    WriteFile(DesiredFile),
    /// Rebuild an indexed table whose source is current but whose index is stale.
    Postmap {
        path: String,
        map_type: MapType,
    },
    /// `systemctl daemon-reload` (after instances are created, enabled or destroyed).
    DaemonReload,
    /// `systemctl enable UNIT`.
    EnableUnit,
    /// `systemctl disable UNIT`.
    DisableUnit,
    /// `systemctl disable --now UNIT; systemctl reset-failed UNIT` for a unit that would run
    /// the instance under another release's naming (left enabled by an in-place upgrade).
    DisableStaleUnit {
        unit: String,
    },
    Start,
    Reload,
    Restart,
    Stop,
    /// `postsuper -d ALL` before destroying an instance (only with --force).
    PurgeQueue,
    /// `postmulti -i NAME -e destroy`.
    Destroy,
}

/// One step of a host's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// None for host-wide steps.
    pub instance: Option<InstanceName>,
    pub action: Action,
    /// Human summary, e.g. "set relayhost, transport_maps".
    pub summary: String,
    pub changes: Vec<FileChange>,
}

impl Step {
    /// The step's name as the user sees it.
    pub fn title(&self) -> String {
        let what = match &self.action {
            Action::InitMultiInstance => "postmulti init".to_string(),
            Action::Create { .. } => "create instance".to_string(),
            Action::SetEnabled(true) => "enable instance".to_string(),
            Action::SetEnabled(false) => "disable instance".to_string(),
            Action::WriteMainCf(_) => "main.cf".to_string(),
            Action::WriteMasterCf(_) => "master.cf".to_string(),
            Action::WriteFile(f) => format!("file {}", f.path),
            Action::Postmap { path, .. } => format!("postmap {path}"),
            Action::DaemonReload => "systemd daemon-reload".to_string(),
            Action::EnableUnit => "enable unit".to_string(),
            Action::DisableUnit => "disable unit".to_string(),
            Action::DisableStaleUnit { unit } => format!("disable stale unit {unit}"),
            Action::Start => "start".to_string(),
            Action::Reload => "reload".to_string(),
            Action::Restart => "restart".to_string(),
            Action::Stop => "stop".to_string(),
            Action::PurgeQueue => "purge queue".to_string(),
            Action::Destroy => "destroy instance".to_string(),
        };
        match &self.instance {
            Some(name) => format!("{name}: {what}"),
            None => what,
        }
    }
}

/// An instance that cannot be converged as asked (reported as a failed step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub instance: InstanceName,
    pub reason: String,
}

/// Everything one host needs, in order. Empty steps: the host is converged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub refusals: Vec<Refusal>,
    /// Drivers of the instances the steps touch.
    pub drivers: BTreeMap<InstanceName, Driver>,
    /// Config dirs of the instances the steps touch.
    pub config_dirs: BTreeMap<InstanceName, String>,
    /// The playbook's checks (`verify:`) of the instances the steps touch.
    pub checks: BTreeMap<InstanceName, Vec<crate::model::Check>>,
    /// The host's apply generation the facts were read at: the apply refuses to run if
    /// another run has applied since (its plan would be made for a host that is no more).
    pub generation: u64,
    /// What changed on the host outside postfleet since the last apply (reported whether or
    /// not the steps put it right).
    pub drift: Vec<crate::drift::Drift>,
    /// The records of what this apply leaves (`$PF_STATE/applied/`), for the instances it
    /// touches and those whose record is missing or out of date: written by the apply, each
    /// only when its instance's steps all went well.
    pub records: Vec<RecordDue>,
}

/// The record one instance gets from an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDue {
    pub instance: InstanceName,
    /// The settings it leaves; None: the instance is wanted absent and keeps no record.
    pub items: Option<Vec<(crate::drift::Key, crate::drift::Value)>>,
}

impl Plan {
    /// Nothing to run on the host: no step and no record to write.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.records.is_empty()
    }
}

/// Host-level problem that prevents planning at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// main.cf parameters whose change needs a stop/start, not a reload.
const RESTART_PARAMS: &[&str] = &["inet_interfaces", "inet_protocols"];

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn plan(
    desired: &DesiredHost,
    facts: &HostFacts,
    opts: PlanOptions,
) -> Result<Plan, PlanError> {
    if facts.postfix_version.is_none() {
        return Err(PlanError(
            "Postfix is not installed (no postconf/postmulti): install the postfix package first"
                .into(),
        ));
    }
    let mut out = Plan {
        generation: facts.generation,
        ..Plan::default()
    };
    let wants_secondary = desired
        .instances
        .iter()
        .any(|i| !i.name.is_default() && i.state == InstanceState::Present);
    if wants_secondary && !multi_instance_ready(facts) {
        out.steps.push(Step {
            instance: None,
            action: Action::InitMultiInstance,
            summary: "enable multi-instance support in the default instance".into(),
            changes: vec![],
        });
    }
    let mut daemon_reload_done = false;
    for inst in &desired.instances {
        let current = facts.instances.get(&inst.name);
        let driver = match facts.unit_for(&inst.name) {
            Some(unit) => Driver::Systemd { unit },
            None => Driver::Postmulti,
        };
        let config_dir = current
            .map(|c| c.config_dir.clone())
            .unwrap_or_else(|| inst.name.config_dir());
        let before = out.steps.len();
        match inst.state {
            InstanceState::Present => plan_present(
                inst,
                current,
                facts,
                &driver,
                &mut daemon_reload_done,
                &mut out,
            ),
            InstanceState::Absent => plan_absent(inst, current, facts, &driver, opts, &mut out)?,
        }
        let touched = out.steps.len() > before;
        // An apply killed half-way left this instance's transaction open: its files are that
        // apply's, not someone's edit, and the recovery puts them back before an apply plans
        // (a check run sees them as they are).
        let half_applied = facts.interrupted.contains(&config_dir);
        if touched {
            out.drivers.insert(inst.name.clone(), driver);
            out.config_dirs.insert(inst.name.clone(), config_dir);
            out.checks.insert(inst.name.clone(), inst.verify.clone());
        }
        // Drift is measured against what the last apply left, not against the playbook.
        let recorded = facts.applied.get(&inst.name);
        if let Some(record) = recorded.filter(|_| !half_applied) {
            out.drift
                .extend(crate::drift::detect(&inst.name, record, facts));
        }
        let items = crate::drift::desired_items(inst);
        let stale = match (&items, recorded) {
            (Some(items), Some(record)) => record.items != *items,
            (Some(_), None) | (None, Some(_)) => true,
            (None, None) => false,
        };
        // A refused instance is left as it is: a record would say it was converged.
        let refused = out.refusals.iter().any(|r| r.instance == inst.name);
        if (touched || stale) && !refused {
            out.records.push(RecordDue {
                instance: inst.name.clone(),
                items,
            });
        }
    }
    Ok(out)
}

fn multi_instance_ready(facts: &HostFacts) -> bool {
    let Some(main_cf) = facts
        .instances
        .get(&InstanceName::default_instance())
        .and_then(|d| d.main_cf.as_deref())
    else {
        return false;
    };
    maincf::get(main_cf, "multi_instance_enable").as_deref() == Some("yes")
        && maincf::get(main_cf, "multi_instance_wrapper").is_some_and(|w| !w.is_empty())
}

fn step(inst: &DesiredInstance, action: Action, summary: impl Into<String>) -> Step {
    Step {
        instance: Some(inst.name.clone()),
        action,
        summary: summary.into(),
        changes: vec![],
    }
}

/// What a config change does to the running instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Activation {
    None,
    Reload,
    Restart,
}

fn plan_present(
    inst: &DesiredInstance,
    current: Option<&InstanceFacts>,
    facts: &HostFacts,
    driver: &Driver,
    daemon_reload_done: &mut bool,
    out: &mut Plan,
) {
    let exists = current.is_some() || inst.name.is_default();
    let mut needs_daemon_reload = false;
    if !exists {
        let note = if facts.unlisted_dirs.contains_key(&inst.name) {
            " (importing the existing config directory)"
        } else {
            ""
        };
        out.steps.push(step(
            inst,
            Action::Create {
                group: inst.group.clone(),
            },
            format!("postmulti -I {} -e create{note}", inst.name),
        ));
        needs_daemon_reload = true;
    }
    let mut activation = Activation::None;

    // main.cf and master.cf are planned here but written last, after the tables they may
    // name exist: the script validates them together with those tables.
    let mut config_steps = Vec::new();
    // main.cf
    let live_main = current.and_then(|c| c.main_cf.clone());
    if let Some((edit, change, restart)) = plan_main_cf(inst, live_main.as_deref()) {
        activation = activation.max(if restart {
            Activation::Restart
        } else {
            Activation::Reload
        });
        let summary = describe_edit(&edit);
        let mut s = step(inst, Action::WriteMainCf(edit), summary);
        s.changes.push(change);
        config_steps.push(s);
    }
    // master.cf
    let live_master = current.and_then(|c| c.master_cf.clone());
    if let Some((edit, change, restart)) = plan_master_cf(inst, live_master.as_deref()) {
        activation = activation.max(if restart {
            Activation::Restart
        } else {
            Activation::Reload
        });
        let summary = describe_edit(&edit);
        let mut s = step(inst, Action::WriteMasterCf(edit), summary);
        s.changes.push(change);
        config_steps.push(s);
    }
    // files and tables
    for file in &inst.files {
        let live = facts.files.get(&file.path);
        let live_content = live.and_then(|f| f.content.as_deref());
        let indexed = file.map_type.as_ref().is_some_and(MapType::is_indexed);
        let content_differs = live_content != Some(file.content.as_slice());
        let mode_differs = live.and_then(|f| f.mode) != Some(file.mode);
        if content_differs || mode_differs || !exists {
            let what = if live_content.is_none() {
                "create"
            } else if content_differs {
                "update"
            } else {
                "fix mode"
            };
            let mut s = step(
                inst,
                Action::WriteFile(file.clone()),
                format!(
                    "{what} {} (mode {:o}){}",
                    file.path,
                    file.mode,
                    if indexed { ", postmap" } else { "" }
                ),
            );
            if content_differs {
                s.changes.push(FileChange {
                    path: file.path.clone(),
                    old: live_content.map(lossy),
                    new: lossy(&file.content),
                    secret: file.secret,
                    format: FileFormat::Plain,
                });
                if file.map_type.is_some() && !indexed {
                    // regexp, pcre, cidr... tables are read at daemon start: reload.
                    activation = activation.max(Activation::Reload);
                }
            }
            out.steps.push(s);
        } else if let Some(map_type) = file
            .map_type
            .clone()
            .filter(|t| t.is_indexed() && live.and_then(|f| f.map_fresh) == Some(false))
        {
            out.steps.push(step(
                inst,
                Action::Postmap {
                    path: file.path.clone(),
                    map_type,
                },
                format!("rebuild the stale index of {}", file.path),
            ));
        }
    }

    out.steps.extend(config_steps);

    // enable / disable with postmulti (the default instance has no such switch)
    let postmulti_enabled = current.map(|c| c.enabled).unwrap_or(false);
    if !inst.name.is_default() && inst.enabled != postmulti_enabled {
        out.steps.push(step(
            inst,
            Action::SetEnabled(inst.enabled),
            format!(
                "postmulti -i {} -e {}",
                inst.name,
                if inst.enabled { "enable" } else { "disable" }
            ),
        ));
        needs_daemon_reload = true;
    }

    let mut owed_reason = None;
    if let Some(owed) = current.and_then(|c| c.pending) {
        let owed = match owed {
            Owed::Restart => Activation::Restart,
            Owed::Reload => Activation::Reload,
        };
        if owed > activation {
            owed_reason = Some("owed by an interrupted run");
        }
        activation = activation.max(owed);
    }

    let running = current.map(|c| c.running).unwrap_or(false);
    let unit_state = match driver {
        Driver::Systemd { unit } => facts.unit_state(unit).cloned(),
        Driver::Postmulti => None,
    };
    plan_stale_unit(inst, facts, driver, out);
    if inst.enabled {
        if let Driver::Systemd { .. } = driver {
            let file_state = unit_state
                .as_ref()
                .map_or(UnitFileState::Disabled, |u| u.file_state.clone());
            let enable = matches!(file_state, UnitFileState::Disabled | UnitFileState::None);
            // `systemctl enable` reloads systemd itself once it has linked the unit (unless
            // told --no-reload): a daemon-reload right before it would run every generator
            // twice.
            if needs_daemon_reload && !*daemon_reload_done && !enable {
                out.steps.push(Step {
                    instance: None,
                    action: Action::DaemonReload,
                    summary: "pick up new or changed instances".into(),
                    changes: vec![],
                });
            }
            if needs_daemon_reload {
                *daemon_reload_done = true;
            }
            if enable {
                out.steps.push(step(
                    inst,
                    Action::EnableUnit,
                    "start at boot (systemctl enable reloads systemd)",
                ));
            }
        }
        // With systemd the unit must be active too: a master started by hand is not
        // supervised, and `systemctl start` on it would fail.
        let unit_active = unit_state.as_ref().map(|u| u.active == ActiveState::Active);
        if !running || unit_active == Some(false) {
            if running && unit_active == Some(false) {
                out.steps.push(step(
                    inst,
                    Action::Stop,
                    "hand the running master to systemd",
                ));
            }
            out.steps.push(step(inst, Action::Start, "not running"));
        } else if activation == Activation::Restart {
            let why = owed_reason.unwrap_or("listeners or interfaces changed");
            out.steps.push(step(inst, Action::Restart, why));
        } else if activation == Activation::Reload {
            let why = owed_reason.unwrap_or("configuration changed");
            out.steps.push(step(inst, Action::Reload, why));
        }
    } else {
        if running {
            out.steps
                .push(step(inst, Action::Stop, "instance is disabled"));
        }
        if let Some(u) = &unit_state {
            if u.file_state == UnitFileState::Enabled {
                out.steps
                    .push(step(inst, Action::DisableUnit, "do not start at boot"));
            }
        }
    }
}

fn plan_absent(
    inst: &DesiredInstance,
    current: Option<&InstanceFacts>,
    facts: &HostFacts,
    driver: &Driver,
    opts: PlanOptions,
    out: &mut Plan,
) -> Result<(), PlanError> {
    if inst.name.is_default() {
        return Err(PlanError(
            "the default instance cannot be absent: remove the postfix package instead".into(),
        ));
    }
    let Some(current) = current else {
        return Ok(());
    };
    let queued = current.queue_size.unwrap_or(0);
    if queued > 0 && !opts.force {
        out.refusals.push(Refusal {
            instance: inst.name.clone(),
            reason: format!(
                "its queue holds {queued} message(s): deliver or purge them first \
                 (postfleet queue flush|purge --instance {}), or re-run with --force to delete them",
                inst.name
            ),
        });
        return Ok(());
    }
    if current.running {
        out.steps
            .push(step(inst, Action::Stop, "instance is to be removed"));
    }
    plan_stale_unit(inst, facts, driver, out);
    if let Driver::Systemd { unit } = driver {
        if facts
            .unit_state(unit)
            .is_some_and(|u| u.file_state == UnitFileState::Enabled)
        {
            out.steps
                .push(step(inst, Action::DisableUnit, "instance is to be removed"));
        }
    }
    if current.enabled {
        out.steps.push(step(
            inst,
            Action::SetEnabled(false),
            "postmulti refuses to destroy an enabled instance",
        ));
    }
    if queued > 0 {
        out.steps.push(step(
            inst,
            Action::PurgeQueue,
            format!("--force: delete {queued} queued message(s)"),
        ));
    }
    out.steps.push(step(
        inst,
        Action::Destroy,
        format!("postmulti -i {} -e destroy", inst.name),
    ));
    if matches!(facts.init, InitSystem::Systemd) {
        out.steps.push(Step {
            instance: None,
            action: Action::DaemonReload,
            summary: "forget the destroyed instance".into(),
            changes: vec![],
        });
    }
    Ok(())
}

/// Disables the unit another release's naming gives the instance, when it is enabled here but
/// is not the unit that runs it (Debian 12's `postfix@postfix-NAME` on an upgraded Debian 13
/// host fails its assertion at every boot).
fn plan_stale_unit(inst: &DesiredInstance, facts: &HostFacts, driver: &Driver, out: &mut Plan) {
    let (Driver::Systemd { unit }, Some(stale)) = (driver, facts.stale_unit_for(&inst.name)) else {
        return;
    };
    out.steps.push(step(
        inst,
        Action::DisableStaleUnit {
            unit: stale.clone(),
        },
        format!(
            "{stale}.service is enabled but does not run this instance here \
             (another release's unit naming; this host runs it as {unit}.service)"
        ),
    ));
}

/// What one config file of an instance needs: the edits that differ, the file change they
/// make, and whether the running instance needs a restart (rather than a reload) for them.
struct FilePlan<T> {
    base: Option<String>,
    edits: Vec<T>,
    change: FileChange,
    restart: bool,
}

/// The shared shape of main.cf and master.cf planning: a whole-file template (optional) is
/// the base, else the live file; only the wanted items that differ from the base are kept.
fn plan_config_file<T: Clone>(
    (path, format): (String, FileFormat),
    template: Option<&str>,
    live: Option<&str>,
    wanted: &[T],
    differs: impl Fn(&str, &T) -> bool,
    edit: impl Fn(&str, &[T]) -> String,
    needs_restart: impl Fn(&str, &str) -> bool,
) -> Option<FilePlan<T>> {
    let base = template.or(live);
    let edits: Vec<T> = wanted
        .iter()
        .filter(|w| base.is_none_or(|text| differs(text, w)))
        .cloned()
        .collect();
    let template_differs = template.is_some_and(|t| Some(t) != live);
    if edits.is_empty() && !template_differs {
        return None;
    }
    let new = edit(base.unwrap_or(""), &edits);
    // The template with the wanted items over it is what the host has already.
    if live == Some(new.as_str()) {
        return None;
    }
    Some(FilePlan {
        base: template.filter(|_| template_differs).map(str::to_string),
        restart: live.is_some_and(|l| needs_restart(l, &new)),
        edits,
        change: FileChange {
            path,
            old: live.map(str::to_string),
            new,
            secret: false,
            format,
        },
    })
}

fn plan_main_cf(
    inst: &DesiredInstance,
    live: Option<&str>,
) -> Option<(ConfigEdit, FileChange, bool)> {
    let wanted: Vec<(String, Option<String>)> = inst
        .main_cf_params
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let plan = plan_config_file(
        (
            format!("{}/main.cf", inst.name.config_dir()),
            FileFormat::MainCf,
        ),
        inst.main_cf.as_deref(),
        live,
        &wanted,
        |text, (name, value)| maincf::differs(text, name, value.as_deref()),
        |text, edits| maincf::edit(text, edits.iter().map(|(n, v)| (n.as_str(), v.as_deref()))),
        |old, new| {
            RESTART_PARAMS
                .iter()
                .any(|p| maincf::get(old, p) != maincf::get(new, p))
        },
    )?;
    let edit = ConfigEdit {
        base: plan.base,
        params: plan.edits,
        services: vec![],
    };
    Some((edit, plan.change, plan.restart))
}

fn plan_master_cf(
    inst: &DesiredInstance,
    live: Option<&str>,
) -> Option<(ConfigEdit, FileChange, bool)> {
    let plan = plan_config_file(
        (
            format!("{}/master.cf", inst.name.config_dir()),
            FileFormat::MasterCf,
        ),
        inst.master_cf.as_deref(),
        live,
        &inst.master_services,
        mastercf::differs,
        mastercf::edit,
        |old, new| listeners(old) != listeners(new),
    )?;
    let edit = ConfigEdit {
        base: plan.base,
        params: vec![],
        services: plan.edits,
    };
    Some((edit, plan.change, plan.restart))
}

fn listeners(master_cf: &str) -> Vec<Vec<String>> {
    mastercf::entries(master_cf)
        .into_iter()
        // A type master.cf does not know is no listener (postconf would refuse it anyway).
        .filter(|e| ServiceType::parse(e.kind()).is_some_and(ServiceType::is_listener))
        .map(|e| e.words)
        .collect()
}

/// "replace from template; set a, b; remove c": what a config edit does, in one line.
fn describe_edit(edit: &ConfigEdit) -> String {
    let params = edit.params.iter().map(|(n, v)| (n.clone(), v.is_some()));
    let services = edit.services.iter().map(|s| (s.key(), s.entry.is_some()));
    let (set, removed): (Vec<_>, Vec<_>) = params.chain(services).partition(|(_, set)| *set);
    let names =
        |v: Vec<(String, bool)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if edit.base.is_some() {
        parts.push("replace from template".to_string());
    }
    if !set.is_empty() {
        parts.push(format!("set {}", names(set)));
    }
    if !removed.is_empty() {
        parts.push(format!("remove {}", names(removed)));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests;
