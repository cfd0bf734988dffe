//! Facts: what a host has now, gathered in one round trip by a read-only shell probe.

use std::collections::BTreeMap;

use base64::Engine;

use crate::plan::desired::{DesiredHost, InstanceName};
use crate::ssh::shell_quote;

const PROBE_BODY: &str = include_str!("probe.sh");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitSystem {
    /// systemd, with the unit that runs the default instance (`postfix@-` or `postfix`).
    Systemd { default_unit: String },
    /// No systemd: instances are driven with `postmulti -p`.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    /// active, inactive, failed, activating...
    pub active: String,
    /// enabled, disabled, static, generated, `-` (none)...
    pub file_state: String,
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
    pub pending: Option<String>,
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
    pub remote_user: String,
    /// None: Postfix is not installed.
    pub postfix_version: Option<String>,
    pub init: InitSystem,
    /// Instances `postmulti -l` lists, by name.
    pub instances: BTreeMap<InstanceName, InstanceFacts>,
    /// Config dirs of wanted instances that exist although postmulti does not list them.
    pub unlisted_dirs: BTreeMap<InstanceName, String>,
    /// systemd units by name (`postfix@-.service`, ...).
    pub units: BTreeMap<String, UnitState>,
    /// Managed files by absolute path.
    pub files: BTreeMap<String, FileFacts>,
}

impl HostFacts {
    /// The systemd unit that runs an instance, when the host runs systemd.
    pub fn unit_for(&self, name: &InstanceName) -> Option<String> {
        match &self.init {
            InitSystem::Systemd { default_unit } if name.is_default() => Some(default_unit.clone()),
            InitSystem::Systemd { .. } => Some(format!("postfix@{name}")),
            InitSystem::Other => None,
        }
    }

    pub fn unit_state(&self, unit: &str) -> Option<&UnitState> {
        self.units.get(&format!("{unit}.service"))
    }
}

/// The probe for a host's desired state: instance names, then `--`, then every managed
/// file as TYPE:PATH, all quoted into the script's `set --` line.
pub fn probe_script(desired: &DesiredHost) -> String {
    let mut args: Vec<String> = vec!["-".into()];
    for inst in &desired.instances {
        if !inst.name.is_default() {
            args.push(inst.name.as_str().into());
        }
    }
    args.push("--".into());
    for inst in &desired.instances {
        for file in &inst.files {
            let kind = file.map_type.as_deref().unwrap_or("-");
            args.push(format!("{kind}:{}", file.path));
        }
    }
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    format!("set -- {}\n{}", quoted.join(" "), PROBE_BODY)
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
        remote_user: String::new(),
        postfix_version: None,
        init: InitSystem::Other,
        instances: BTreeMap::new(),
        unlisted_dirs: BTreeMap::new(),
        units: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    let mut complete = false;
    for line in output.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        match field(0) {
            "user" => facts.remote_user = field(1).to_string(),
            "postfix" if field(1) == "missing" => complete = true,
            "version" => facts.postfix_version = Some(field(1).to_string()),
            "init" if field(1) == "systemd" => {
                facts.init = InitSystem::Systemd {
                    default_unit: field(2).to_string(),
                }
            }
            "init" => facts.init = InitSystem::Other,
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
                    _ => inst.pending = Some(field(2).to_string()).filter(|p| !p.is_empty()),
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
                        active: field(2).to_string(),
                        file_state: field(3).to_string(),
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
            "end" => complete = true,
            _ => {}
        }
    }
    if !complete {
        return Err("the facts probe did not finish (output cut short)".into());
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::desired::{DesiredFile, DesiredInstance};

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
            map_type: Some("hash".into()),
            secret: false,
        });
        let script = probe_script(&DesiredHost {
            instances: vec![inst],
        });
        let first = script.lines().next().unwrap();
        assert_eq!(
            first,
            r#"set -- - postfix-news -- "hash:/etc/postfix-news/it's""#
        );
    }

    #[test]
    fn parses_a_probe_output() {
        let out = format!(
            "user\troot\nversion\t3.7.11\ninit\tsystemd\tpostfix@-\n\
             instance\t-\t-\ty\t/etc/postfix\n\
             instance\tpostfix-news\tmta\tn\t/etc/postfix-news\n\
             maincf\t-\t{}\nrunning\t-\tyes\nqueue\t-\t3\n\
             running\tpostfix-news\tno\npending\tpostfix-news\trestart\n\
             unit\tpostfix@-.service\tactive\tenabled\n\
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
        assert_eq!(news.pending.as_deref(), Some("restart"));
        assert_eq!(
            facts.unit_for(&news.name).as_deref(),
            Some("postfix@postfix-news")
        );
        assert_eq!(facts.unit_state("postfix@-").unwrap().active, "active");
        assert_eq!(
            facts.files["/etc/postfix/t"].content.as_deref(),
            Some(&b"a b\n"[..])
        );
        assert_eq!(facts.files["/etc/postfix/t"].mode, Some(0o644));
        assert_eq!(facts.files["/etc/postfix/t"].map_fresh, Some(false));
        assert_eq!(facts.files["/etc/postfix/u"].content, None);
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse("user\troot\nversion\t3.7\n").is_err());
    }
}
