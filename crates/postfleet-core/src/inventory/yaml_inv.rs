//! The YAML inventory (Ansible's yaml plugin shape): `all:` and other groups at the top, each
//! with `hosts:` (a host maps to its vars or nothing; `HOST:PORT` sets its port, see
//! [`address`]), `children:` and `vars:`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::build::{Builder, GroupId, VarDef};
use super::yaml::{self, OrderedMap};
use super::{address, ranges};
use crate::error::{InputError, SourcePos};

pub(crate) const SCHEMA_HINT: &str = "an inventory is `all:` (and other groups) with `hosts:`, `children:` and `vars:`; a host maps to its vars or nothing";

/// One group as written: every key optional, anything else is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    #[serde(default)]
    hosts: OrderedMap<OrderedMap<Spanned<Value>>>,
    #[serde(default)]
    children: OrderedMap<Option<GroupDoc>>,
    #[serde(default)]
    vars: OrderedMap<Spanned<Value>>,
}

/// Reads the YAML inventory `text` (the contents of `file`) into `builder`.
pub(crate) fn read(text: &str, file: &Path, builder: &mut Builder) -> Result<(), InputError> {
    let top: Option<OrderedMap<Option<GroupDoc>>> = yaml::parse(text, file, SCHEMA_HINT)?;
    let mut walker = Walker { file, builder };
    for (name, doc) in top.unwrap_or_default().0 {
        walker.group(&name, doc, None)?;
    }
    Ok(())
}

struct Walker<'a> {
    file: &'a Path,
    builder: &'a mut Builder,
}

impl Walker<'_> {
    fn pos(&self, name: &Spanned<String>) -> SourcePos {
        yaml::pos(self.file, &name.referenced)
    }

    fn group(
        &mut self,
        name: &Spanned<String>,
        doc: Option<GroupDoc>,
        parent: Option<GroupId>,
    ) -> Result<(), InputError> {
        let pos = self.pos(name);
        let group = self.builder.group(&name.value, &pos)?;
        if let Some(parent) = parent {
            self.builder.child(parent, group, &pos)?;
        }
        let Some(doc) = doc else { return Ok(()) };
        for (host_key, vars) in doc.hosts.0 {
            let pos = self.pos(&host_key);
            let (pattern, port) = address::split(&host_key.value);
            let names = ranges::expand(pattern)
                .map_err(|m| InputError::new(m).at(pos.clone()).hint(ranges::RANGE_HINT))?;
            let port = port.map(|(digits, _)| VarDef {
                name: "ansible_port".into(),
                value: address::port_value(digits),
                pos: pos.clone(),
            });
            let defs = self.var_defs(vars)?;
            for name in names {
                let host = match &port {
                    Some(port) => self.builder.host_with_port(group, &name, &pos, port)?,
                    None => self.builder.host(group, &name, &pos)?,
                };
                for def in &defs {
                    self.builder.host_var(host, def.clone());
                }
            }
        }
        for def in self.var_defs(doc.vars)? {
            self.builder.group_var(group, def);
        }
        for (child, child_doc) in doc.children.0 {
            self.group(&child, child_doc, Some(group))?;
        }
        Ok(())
    }

    fn var_defs(&self, vars: OrderedMap<Spanned<Value>>) -> Result<Vec<VarDef>, InputError> {
        var_defs(vars, self.file)
    }
}

/// A mapping of variables read from `file`, each name checked, and none encrypted.
pub(crate) fn var_defs(
    vars: OrderedMap<Spanned<Value>>,
    file: &Path,
) -> Result<Vec<VarDef>, InputError> {
    vars.0
        .into_iter()
        .map(|(name, value)| {
            yaml::check_var_name(&name, file)?;
            if is_vaulted(&value.value) {
                return Err(InputError::new(format!(
                    "`{}` is encrypted with ansible-vault (!vault), which postfleet cannot decrypt",
                    name.value
                ))
                .at(yaml::pos(file, &value.referenced))
                .hint(VAULT_HINT));
            }
            Ok(VarDef {
                pos: yaml::pos(file, &value.referenced),
                name: name.value,
                value: value.value,
            })
        })
        .collect()
}

/// What to do with a value or a file encrypted with ansible-vault.
pub(crate) const VAULT_HINT: &str = "decrypt it (ansible-vault decrypt FILE), or keep the secrets out of the inventory and pass them with -e @FILE";

/// Whether `value` holds an ansible-vault ciphertext (an inline `!vault` value reads as its
/// text): taken as it is, it would end up in the configuration as a password.
fn is_vaulted(value: &Value) -> bool {
    match value {
        Value::String(s) => s.trim_start().starts_with("$ANSIBLE_VAULT;"),
        Value::Array(items) => items.iter().any(is_vaulted),
        Value::Object(map) => map.values().any(is_vaulted),
        _ => false,
    }
}
