//! Facts: what a host has now, gathered in one round trip by a read-only shell probe.

use std::collections::BTreeMap;

use base64::Engine;

use crate::model::{DesiredHost, InstanceName};

/// The probe: pf_master_runs (shared with the apply), then its body.
const PROBE_BODY: &str = concat!(include_str!("../master_runs.sh"), include_str!("probe.sh"));
/// Reads the host's postfix@.service and maps instances to the units that run them.
pub const UNIT_TEMPLATE_AWK: &str = include_str!("unit-template.awk");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitSystem {
    /// systemd: instances run under the units the host's own unit files give them.
    Systemd,
    /// No systemd: instances are driven with `postmulti -p`.
    Other,
}

/// How the host's `postfix@.service` template ties a unit instance to a Postfix instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitTemplate {
    /// MAIL_CONFIG (or AssertPathExists) derives the config dir from the unit instance, e.g.
    /// `/etc/postfix-%I` (Debian 13: `/etc/postfix-newsletter` runs as `postfix@newsletter`).
    ConfigDir(String),
    /// It runs `postmulti -i %i`: the unit instance is the postmulti name (Debian 12).
    PostmultiName(String),
    /// No template, or one that fits neither rule: instances are driven with `postmulti -p`.
    Unusable,
}

impl UnitTemplate {
    /// A line for `status`: how this host's instances are run.
    pub fn describe(&self) -> String {
        match self {
            UnitTemplate::ConfigDir(p) => format!("postfix@.service maps config dirs ({p})"),
            UnitTemplate::PostmultiName(p) => format!("postfix@.service runs `{p}`"),
            UnitTemplate::Unusable => "no postfix@.service template that maps instances \
                 (none, or neither MAIL_CONFIG=...%I nor postmulti -i %i): \
                 instances that no unit runs are driven with postmulti -p"
                .to_string(),
        }
    }
}

/// A unit's ActiveState, as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ActiveState {
    Active,
    Reloading,
    #[default]
    Inactive,
    Failed,
    Activating,
    Deactivating,
    /// A state this version of postfleet does not know (shown as systemd said it).
    Other(String),
}

impl ActiveState {
    pub fn parse(text: &str) -> ActiveState {
        match text {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" | "" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            other => ActiveState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Other(s) => s,
        }
    }
}

/// A unit's UnitFileState: whether (and how) it starts at boot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UnitFileState {
    /// `systemctl enable` made links for it.
    Enabled,
    /// Enabled by a generator or in /run: for this boot only (Debian 12's `postfix@-`).
    EnabledRuntime,
    Disabled,
    Static,
    Masked,
    /// No unit file state at all (`-`: a unit without [Install], or none).
    #[default]
    None,
    /// Another state (generated, indirect, alias...).
    Other(String),
}

impl UnitFileState {
    pub fn parse(text: &str) -> UnitFileState {
        match text {
            "enabled" => UnitFileState::Enabled,
            "enabled-runtime" => UnitFileState::EnabledRuntime,
            "disabled" => UnitFileState::Disabled,
            "static" => UnitFileState::Static,
            "masked" | "masked-runtime" => UnitFileState::Masked,
            "-" | "" => UnitFileState::None,
            other => UnitFileState::Other(other.to_string()),
        }
    }
}

/// What an interrupted run left owed to an instance (recorded in `$PF_STATE/pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owed {
    Reload,
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub active: ActiveState,
    pub file_state: UnitFileState,
    /// `Type=oneshot` (Debian 12's postfix.service is a oneshot umbrella).
    pub oneshot: bool,
    /// systemd has a unit file for it (LoadState=loaded).
    pub loaded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFacts {
    pub name: InstanceName,
    pub group: Option<String>,
    /// `postmulti -l` says the instance is enabled.
    pub enabled: bool,
    pub config_dir: String,
    pub main_cf: Option<String>,
    pub master_cf: Option<String>,
    /// `postfix status` succeeds: the master process runs.
    pub running: bool,
    /// Messages in incoming, active, deferred, hold and maildrop.
    pub queue_size: Option<u64>,
    /// A reload or restart an interrupted run owes this instance.
    pub pending: Option<Owed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// None: the file does not exist.
    pub content: Option<Vec<u8>>,
    pub mode: Option<u32>,
    /// For lookup tables: the indexed file exists and is not older than its source.
    pub map_fresh: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Applies recorded on the host when the facts were read (`$PF_STATE/generation`).
    pub generation: u64,
    /// None: Postfix is not installed.
    pub postfix_version: Option<String>,
    pub init: InitSystem,
    /// The host's postfix@.service (with systemd).
    pub template: UnitTemplate,
    /// The template unit that runs each instance (listed or wanted), as the template maps it.
    pub template_units: BTreeMap<InstanceName, String>,
    /// Instances `postmulti -l` lists, by name.
    pub instances: BTreeMap<InstanceName, InstanceFacts>,
    /// Config dirs of wanted instances that exist although postmulti does not list them.
    pub unlisted_dirs: BTreeMap<InstanceName, String>,
    /// systemd units by name (`postfix@-.service`, ...).
    pub units: BTreeMap<String, UnitState>,
    /// Managed files by absolute path.
    pub files: BTreeMap<String, FileFacts>,
    /// Config dirs where an apply was interrupted mid-transaction: its backup is still there.
    pub interrupted: Vec<String>,
    /// Scratch copies and temp files an interrupted apply left behind.
    pub leftovers: Vec<String>,
    /// What the last apply left, per instance (`$PF_STATE/applied/`), to find drift with.
    /// A record that cannot be read is left out (nothing to compare with).
    pub applied: BTreeMap<InstanceName, crate::drift::Record>,
}

impl HostFacts {
    /// An apply was interrupted here (killed mid-way): what it left must be put right
    /// before a plan can be made from these facts.
    pub fn needs_recovery(&self) -> bool {
        !self.interrupted.is_empty() || !self.leftovers.is_empty()
    }

    /// The systemd unit that runs an instance, read from the host's unit files: for the
    /// default instance `postfix.service` when that is a real service (Debian 13) rather than
    /// a oneshot umbrella (Debian 12); else the template unit that maps the instance. None:
    /// no systemd, or no unit runs it (driven with `postmulti -p`).
    pub fn unit_for(&self, name: &InstanceName) -> Option<String> {
        if self.init != InitSystem::Systemd {
            return None;
        }
        if name.is_default() {
            let main = self.units.get("postfix.service");
            if main.is_some_and(|u| u.loaded && !u.oneshot) {
                return Some("postfix".into());
            }
        }
        self.template_units.get(name).cloned()
    }

    /// An enabled unit that would run this instance under another release's naming (e.g.
    /// `postfix@postfix-newsletter` on Debian 13, left by an upgrade from 12), which is not
    /// the unit that runs it here: it fails at every boot and must be disabled.
    pub fn stale_unit_for(&self, name: &InstanceName) -> Option<String> {
        let unit = self.unit_for(name)?;
        let by_name = format!("postfix@{name}");
        let state = self.unit_state(&by_name)?;
        // Only links `systemctl enable` made (and `disable` removes): a generator's
        // (enabled-runtime) would come back at every boot, and the step with it.
        (by_name != unit && state.file_state == UnitFileState::Enabled).then_some(by_name)
    }

    pub fn unit_state(&self, unit: &str) -> Option<&UnitState> {
        self.units.get(&format!("{unit}.service"))
    }
}

/// The probe for a host's desired state: the unit-mapping awk program, instance names, then
/// `--`, then every managed file as TYPE:PATH, all quoted into the script's `set --` line.
pub fn probe_script(desired: &DesiredHost) -> String {
    let mut args: Vec<String> = vec![UNIT_TEMPLATE_AWK.into(), "-".into()];
    for inst in &desired.instances {
        if !inst.name.is_default() {
            args.push(inst.name.as_str().into());
        }
    }
    args.push("--".into());
    for inst in &desired.instances {
        for file in &inst.files {
            let kind = file.map_type.as_ref().map_or("-", |t| t.as_str());
            args.push(format!("{kind}:{}", file.path));
        }
    }
    crate::scripts::script(&args, PROBE_BODY)
}

fn decode(field: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(field.trim())
        .map_err(|e| format!("bad base64 in probe output: {e}"))
}

fn decode_text(field: &str) -> Result<String, String> {
    String::from_utf8(decode(field)?).map_err(|_| "a config file is not UTF-8".to_string())
}

fn instance_name(raw: &str) -> Result<InstanceName, String> {
    InstanceName::parse(raw).map_err(|e| format!("probe: {e}"))
}

/// Parses the probe's output. Errors mean the probe did not finish (or is not ours).
pub fn parse(output: &str) -> Result<HostFacts, String> {
    let mut facts = HostFacts {
        generation: 0,
        postfix_version: None,
        init: InitSystem::Other,
        template: UnitTemplate::Unusable,
        template_units: BTreeMap::new(),
        instances: BTreeMap::new(),
        unlisted_dirs: BTreeMap::new(),
        units: BTreeMap::new(),
        files: BTreeMap::new(),
        interrupted: Vec::new(),
        leftovers: Vec::new(),
        applied: BTreeMap::new(),
    };
    let mut complete = false;
    let mut applied_lines: BTreeMap<String, String> = BTreeMap::new();
    for line in output.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        match field(0) {
            "generation" => facts.generation = field(1).trim().parse().unwrap_or(0),
            "interrupted" => facts.interrupted.push(field(1).to_string()),
            "leftover" => facts.leftovers.push(field(1).to_string()),
            "postfix" if field(1) == "missing" => complete = true,
            "version" => facts.postfix_version = Some(field(1).to_string()),
            "init" if field(1) == "systemd" => facts.init = InitSystem::Systemd,
            "init" => facts.init = InitSystem::Other,
            "template" => {
                facts.template = match field(1) {
                    "config-dir" => UnitTemplate::ConfigDir(field(2).to_string()),
                    "postmulti-name" => UnitTemplate::PostmultiName(field(2).to_string()),
                    _ => UnitTemplate::Unusable,
                }
            }
            "unitof" => {
                facts
                    .template_units
                    .insert(instance_name(field(1))?, field(2).to_string());
            }
            "instance" => {
                let name = instance_name(field(1))?;
                let group = Some(field(2).to_string()).filter(|g| !g.is_empty() && g != "-");
                facts.instances.insert(
                    name.clone(),
                    InstanceFacts {
                        name,
                        group,
                        enabled: field(3) == "y",
                        config_dir: field(4).to_string(),
                        main_cf: None,
                        master_cf: None,
                        running: false,
                        queue_size: None,
                        pending: None,
                    },
                );
            }
            kind @ ("maincf" | "mastercf" | "running" | "queue" | "pending") => {
                let name = instance_name(field(1))?;
                let Some(inst) = facts.instances.get_mut(&name) else {
                    continue;
                };
                match kind {
                    "maincf" => inst.main_cf = Some(decode_text(field(2))?),
                    "mastercf" => inst.master_cf = Some(decode_text(field(2))?),
                    "running" => inst.running = field(2) == "yes",
                    "queue" => inst.queue_size = field(2).trim().parse().ok(),
                    // anything recorded but "restart" asks for at least a reload
                    _ => {
                        inst.pending = match field(2) {
                            "" => None,
                            "restart" => Some(Owed::Restart),
                            _ => Some(Owed::Reload),
                        }
                    }
                }
            }
            "unlisted" => {
                facts
                    .unlisted_dirs
                    .insert(instance_name(field(1))?, field(2).to_string());
            }
            "unit" => {
                facts.units.insert(
                    field(1).to_string(),
                    UnitState {
                        active: ActiveState::parse(field(2)),
                        file_state: UnitFileState::parse(field(3)),
                        oneshot: field(4) == "oneshot",
                        loaded: field(5) == "loaded",
                    },
                );
            }
            "file" => {
                let facts_of_file = if field(2) == "missing" {
                    FileFacts {
                        content: None,
                        mode: None,
                        map_fresh: None,
                    }
                } else {
                    FileFacts {
                        content: Some(decode(field(3))?),
                        mode: u32::from_str_radix(field(2), 8).ok(),
                        map_fresh: None,
                    }
                };
                facts.files.insert(field(1).to_string(), facts_of_file);
            }
            "mapfresh" => {
                if let Some(file) = facts.files.get_mut(field(1)) {
                    file.map_fresh = Some(field(2) == "yes");
                }
            }
            "applied" => {
                // One line of a record, which has tabs of its own.
                let mut parts = line.splitn(3, '\t').skip(1);
                if let (Some(file), Some(text)) = (parts.next(), parts.next()) {
                    let lines = applied_lines.entry(file.to_string()).or_default();
                    lines.push_str(text);
                    lines.push('\n');
                }
            }
            "end" => complete = true,
            _ => {}
        }
    }
    if !complete {
        return Err("the facts probe did not finish (output cut short)".into());
    }
    // A record that cannot be read is left out: there is nothing to compare with.
    for (file, text) in applied_lines {
        let record =
            crate::drift::instance_of_record_file(&file).zip(crate::drift::Record::parse(&text));
        if let Some((name, record)) = record {
            facts.applied.insert(name, record);
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredFile, DesiredInstance};

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn probe_script_quotes_every_argument() {
        let mut inst = DesiredInstance::new(InstanceName::parse("postfix-news").unwrap());
        inst.files.push(DesiredFile {
            path: "/etc/postfix-news/it's".into(),
            content: vec![],
            mode: 0o644,
            map_type: Some(crate::model::MapType::new("hash")),
            secret: false,
        });
        let script = probe_script(&DesiredHost {
            instances: vec![inst],
        });
        assert!(script.starts_with("set -- "), "{script}");
        assert!(
            script.contains(" - postfix-news -- \"hash:/etc/postfix-news/it's\"\n"),
            "{script}"
        );
    }

    #[test]
    fn records_come_line_by_line_and_a_bad_one_is_left_out() {
        let record = crate::drift::Record {
            at: 5,
            generation: 2,
            by: "root@b".into(),
            items: vec![(
                crate::drift::Key::Param("relayhost".into()),
                crate::drift::Value::Shown("[r]:25".into()),
            )],
        };
        let mut out = String::new();
        for line in record.render().lines() {
            out.push_str(&format!("applied\tpostfix-news\t{line}\n"));
        }
        out.push_str("applied\tdefault\tnot a record\nend\n");
        let facts = parse(&out).unwrap();
        assert_eq!(facts.applied.len(), 1);
        assert_eq!(
            facts
                .applied
                .get(&InstanceName::parse("postfix-news").unwrap()),
            Some(&record)
        );
    }

    #[test]
    fn parses_a_probe_output() {
        let out = format!(
            "user\troot\nversion\t3.7.11\n\
             instance\t-\t-\ty\t/etc/postfix\n\
             instance\tpostfix-news\tmta\tn\t/etc/postfix-news\n\
             maincf\t-\t{}\nrunning\t-\tyes\nqueue\t-\t3\n\
             running\tpostfix-news\tno\npending\tpostfix-news\trestart\n\
             template\tpostmulti-name\tpostmulti -i %i\n\
             unitof\t-\tpostfix@-\nunitof\tpostfix-news\tpostfix@postfix-news\n\
             unit\tpostfix@-.service\tactive\tenabled-runtime\tforking\tloaded\n\
             unit\tpostfix.service\tactive\tenabled\toneshot\tloaded\ninit\tsystemd\n\
             file\t/etc/postfix/t\t644\t{}\nmapfresh\t/etc/postfix/t\tno\n\
             file\t/etc/postfix/u\tmissing\nend\n",
            b64("relayhost = x\n"),
            b64("a b\n")
        );
        let facts = parse(&out).unwrap();
        assert_eq!(facts.postfix_version.as_deref(), Some("3.7.11"));
        let default = &facts.instances[&InstanceName::default_instance()];
        assert!(default.running && default.enabled);
        assert_eq!(default.main_cf.as_deref(), Some("relayhost = x\n"));
        assert_eq!(default.queue_size, Some(3));
        let news = &facts.instances[&InstanceName::parse("postfix-news").unwrap()];
        assert_eq!(news.group.as_deref(), Some("mta"));
        assert!(!news.enabled && !news.running);
        assert_eq!(news.pending, Some(Owed::Restart));
        assert_eq!(
            facts.unit_for(&news.name).as_deref(),
            Some("postfix@postfix-news")
        );
        let default_unit = facts.unit_state("postfix@-").unwrap();
        assert_eq!(default_unit.active, ActiveState::Active);
        assert_eq!(default_unit.file_state, UnitFileState::EnabledRuntime);
        assert!(matches!(
            default_unit.file_state,
            UnitFileState::Enabled | UnitFileState::EnabledRuntime
        ));
        assert!(facts.unit_state("postfix").unwrap().oneshot);
        assert_eq!(
            facts.files["/etc/postfix/t"].content.as_deref(),
            Some(&b"a b\n"[..])
        );
        assert_eq!(facts.files["/etc/postfix/t"].mode, Some(0o644));
        assert_eq!(facts.files["/etc/postfix/t"].map_fresh, Some(false));
        assert_eq!(facts.files["/etc/postfix/u"].content, None);
    }

    /// Debian 12's postfix@.service, as `systemctl cat` prints it (abridged).
    const BOOKWORM_TEMPLATE: &str = "# /lib/systemd/system/postfix@.service\n[Unit]\n\
        Description=Postfix Mail Transport Agent (instance %i)\nPartOf=postfix.service\n\n\
        [Service]\nType=forking\nGuessMainPID=no\n\
        ExecStartPre=/usr/lib/postfix/configure-instance.sh %i\n\
        ExecStart=/usr/sbin/postmulti -i %i -p start\n\
        ExecStop=/usr/sbin/postmulti -i %i -p stop\n\n[Install]\nWantedBy=multi-user.target\n";

    /// Debian 13's postfix@.service (abridged).
    const TRIXIE_TEMPLATE: &str = "# /usr/lib/systemd/system/postfix@.service\n[Unit]\n\
        Description=Postfix Mail Transport Agent (instance %i, /etc/postfix-%I)\n\
        PartOf=postfix.service\nAssertPathExists=/etc/postfix-%I/main.cf\n\n[Service]\n\
        Type=forking\n# Force operations on single non-default instance\n\
        Environment=MAIL_CONFIG=/etc/postfix-%I\nExecStartPre=+postfix check\n\
        ExecStart=postfix debian-systemd-start\nExecStop=postfix stop\n";

    /// Runs unit-template.awk as the probe does: (template record, unitof NAME -> UNIT).
    fn map_units(template: &str, instances: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        use std::io::Write;
        let pairs: Vec<String> = instances.iter().map(|(n, d)| format!("{n}\t{d}")).collect();
        let mut child = std::process::Command::new("awk")
            .arg(UNIT_TEMPLATE_AWK)
            .env("PF_INSTANCES", pairs.join("\n"))
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("awk runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(template.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let template = lines.next().unwrap().to_string();
        let units = lines
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f[0], "unitof", "{l}");
                (f[1].to_string(), f[2].to_string())
            })
            .collect();
        (template, units)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn bookworm_template_runs_instances_by_postmulti_name() {
        let (template, units) = map_units(
            BOOKWORM_TEMPLATE,
            &[
                ("-", "/etc/postfix"),
                ("postfix-newsletter", "/etc/postfix-newsletter"),
            ],
        );
        assert_eq!(template, "template\tpostmulti-name\tpostmulti -i %i");
        assert_eq!(
            units,
            pairs(&[
                ("-", "postfix@-"),
                ("postfix-newsletter", "postfix@postfix-newsletter")
            ])
        );
    }

    #[test]
    fn trixie_template_runs_instances_by_config_dir_with_systemd_escaping() {
        let (template, units) = map_units(
            TRIXIE_TEMPLATE,
            &[
                ("-", "/etc/postfix"),
                ("postfix-newsletter", "/etc/postfix-newsletter"),
                // '-' inside the instance string is escaped, so %I gives it back
                ("postfix-bulk-out", "/etc/postfix-bulk-out"),
                // an imported instance elsewhere: no unit of this template runs it
                ("postfix-old", "/srv/postfix-old"),
                // a sub-directory: '/' becomes '-'
                ("postfix-deep", "/etc/postfix-a/b"),
            ],
        );
        assert_eq!(template, "template\tconfig-dir\t/etc/postfix-%I");
        assert_eq!(
            units,
            pairs(&[
                ("postfix-newsletter", "postfix@newsletter"),
                ("postfix-bulk-out", "postfix@bulk\\x2dout"),
                ("postfix-deep", "postfix@a-b"),
            ])
        );
    }

    #[test]
    fn template_drop_ins_and_other_patterns_are_read_the_systemd_way() {
        // A drop-in replaces MAIL_CONFIG (the last assignment wins, quotes honoured).
        let drop_in = format!(
            "{TRIXIE_TEMPLATE}\n# /etc/systemd/system/postfix@.service.d/x.conf\n[Service]\n\
             Environment=\"FOO=1\" \"MAIL_CONFIG=/srv/mail/%i/etc\"\n"
        );
        let (template, units) = map_units(
            &drop_in,
            &[
                ("postfix-a", "/srv/mail/a/etc"),
                ("postfix-b", "/etc/postfix-b"),
            ],
        );
        assert_eq!(template, "template\tconfig-dir\t/srv/mail/%i/etc");
        assert_eq!(units, pairs(&[("postfix-a", "postfix@a")]));

        // No %i/%I in MAIL_CONFIG and no postmulti: unusable, nothing mapped.
        let fixed = TRIXIE_TEMPLATE
            .replace("/etc/postfix-%I\nExec", "/etc/postfix-fixed\nExec")
            .replace("AssertPathExists=/etc/postfix-%I/main.cf\n", "");
        let (template, units) = map_units(&fixed, &[("postfix-b", "/etc/postfix-b")]);
        assert_eq!(template, "template\tnone\t");
        assert!(units.is_empty());

        // No template at all (systemctl cat prints nothing).
        let (template, units) = map_units("", &[("-", "/etc/postfix")]);
        assert_eq!(template, "template\tnone\t");
        assert!(units.is_empty());
    }

    fn facts_with_units(records: &str) -> HostFacts {
        parse(&format!(
            "user\troot\nversion\t3.10.1\n{records}init\tsystemd\nend\n"
        ))
        .unwrap()
    }

    #[test]
    fn default_instance_runs_under_postfix_service_unless_it_is_an_umbrella() {
        let default = InstanceName::default_instance();
        let trixie = facts_with_units(
            "template\tconfig-dir\t/etc/postfix-%I\n\
             unit\tpostfix.service\tactive\tenabled\tforking\tloaded\n\
             unit\tpostfix@-.service\tinactive\tdisabled\tforking\tloaded\n",
        );
        assert_eq!(trixie.unit_for(&default).as_deref(), Some("postfix"));
        assert_eq!(trixie.stale_unit_for(&default), None);
        assert_eq!(
            trixie.template,
            UnitTemplate::ConfigDir("/etc/postfix-%I".into())
        );
        let bookworm = facts_with_units(
            "template\tpostmulti-name\tpostmulti -i %i\nunitof\t-\tpostfix@-\n\
             unit\tpostfix.service\tactive\tenabled\toneshot\tloaded\n\
             unit\tpostfix@-.service\tactive\tenabled-runtime\tforking\tloaded\n",
        );
        assert_eq!(bookworm.unit_for(&default).as_deref(), Some("postfix@-"));
        assert_eq!(bookworm.stale_unit_for(&default), None);
    }

    #[test]
    fn an_enabled_unit_of_the_other_naming_is_stale() {
        let news = InstanceName::parse("postfix-newsletter").unwrap();
        let upgraded = facts_with_units(
            "template\tconfig-dir\t/etc/postfix-%I\nunitof\tpostfix-newsletter\tpostfix@newsletter\n\
             unit\tpostfix@newsletter.service\tinactive\tdisabled\tforking\tloaded\n\
             unit\tpostfix@postfix-newsletter.service\tfailed\tenabled\tforking\tloaded\n",
        );
        assert_eq!(
            upgraded.unit_for(&news).as_deref(),
            Some("postfix@newsletter")
        );
        assert_eq!(
            upgraded.stale_unit_for(&news).as_deref(),
            Some("postfix@postfix-newsletter")
        );
        // A generator's link (enabled-runtime) is not one `systemctl disable` could remove.
        let generated = facts_with_units(
            "template\tconfig-dir\t/etc/postfix-%I\nunitof\tpostfix-newsletter\tpostfix@newsletter\n\
             unit\tpostfix@postfix-newsletter.service\tfailed\tenabled-runtime\tforking\tloaded\n",
        );
        assert_eq!(generated.stale_unit_for(&news), None);
        // Without a usable template the instance is driven with postmulti -p.
        let unusable = facts_with_units("template\tnone\t\n");
        assert_eq!(unusable.unit_for(&news), None);
        assert_eq!(unusable.template, UnitTemplate::Unusable);
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse("user\troot\nversion\t3.7\n").is_err());
    }

    #[test]
    fn what_an_interrupted_apply_left_asks_for_a_recovery() {
        let clean = parse("user\troot\nversion\t3.7\ninit\tother\nend\n").unwrap();
        assert!(!clean.needs_recovery());
        let left = parse(
            "user\troot\nversion\t3.7\ninit\tother\n\
             interrupted\t/etc/postfix-x\nleftover\t/etc/postfix-x/t.postfleet-Ab12Cd\nend\n",
        )
        .unwrap();
        assert!(left.needs_recovery());
        assert_eq!(left.interrupted, ["/etc/postfix-x"]);
        assert_eq!(left.leftovers, ["/etc/postfix-x/t.postfleet-Ab12Cd"]);
    }
}
