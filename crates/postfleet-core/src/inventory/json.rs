//! The JSON inventory `ansible-inventory -i ... --list` prints (the format of dynamic
//! inventory scripts too):
//!
//! ```json
//! {
//!     "_meta": {"hostvars": {"mx1": {"ansible_port": 2222}}},
//!     "all": {"children": ["ungrouped", "mx"]},
//!     "mx": {"hosts": ["mx1", "mx2"], "vars": {"relay": "r"}, "children": ["mx_eu"]},
//!     "mx_eu": ["mx3"]
//! }
//! ```
//!
//! Every key but `_meta` is a group: `hosts` (names), `children` (group names) and `vars`, or
//! a plain list of host names. `_meta.hostvars` gives hosts their vars; a host named only
//! there is not a host, and other keys of `_meta` (ansible-core 2.19 prints `profile`) are
//! ignored, as Ansible's script plugin has it. JSON is YAML: it is read with the
//! YAML parser, which knows where everything is. A JSON file in the YAML inventory's shape
//! (`hosts` and `children` as mappings) is read as YAML.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::value::SeqAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::build::Builder;
use super::yaml::{self, OrderedMap};
use super::yaml_inv::{self, var_defs};
use crate::error::InputError;

const SHAPE_HINT: &str = "the JSON of `ansible-inventory --list` is an object: `_meta` (`hostvars`: host -> vars) and groups, each with `hosts` (a list of names), `children` (a list of group names) and `vars` (an object), or a list of host names";

/// One group, or `_meta`.
#[derive(Debug, Default)]
struct GroupDoc {
    hosts: Option<Vec<Spanned<String>>>,
    children: Option<Vec<Spanned<String>>>,
    vars: OrderedMap<Spanned<Value>>,
    /// `_meta` only.
    hostvars: OrderedMap<OrderedMap<Spanned<Value>>>,
    /// Any other key, where it is: an error in a group; in `_meta` ignored, as Ansible does
    /// (ansible-core 2.19 prints `_meta.profile` there).
    other: Vec<Spanned<String>>,
}

/// A top-level value: a group object, a list of host names, or null (an empty group).
#[derive(Debug)]
struct Entry(GroupDoc);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a group: an object with hosts, children and vars, or a list of host names",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                let mut doc = GroupDoc::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        "hosts" => doc.hosts = map.next_value()?,
                        "children" => doc.children = map.next_value()?,
                        "vars" => doc.vars = map.next_value()?,
                        "hostvars" => doc.hostvars = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            doc.other.push(key);
                        }
                    }
                }
                Ok(Entry(doc))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entry, A::Error> {
                let hosts = Vec::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(Entry(GroupDoc {
                    hosts: Some(hosts),
                    ..GroupDoc::default()
                }))
            }

            fn visit_unit<E>(self) -> Result<Entry, E> {
                Ok(Entry(GroupDoc::default()))
            }

            fn visit_none<E>(self) -> Result<Entry, E> {
                Ok(Entry(GroupDoc::default()))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

/// Whether `top` is a YAML-shaped inventory written as JSON: some group has `hosts` or
/// `children` as a mapping.
fn is_yaml_shape(top: &Value) -> bool {
    let Some(groups) = top.as_object() else {
        return false;
    };
    groups.iter().any(|(name, group)| {
        name != "_meta"
            && ["hosts", "children"]
                .iter()
                .any(|key| group.get(key).is_some_and(Value::is_object))
    })
}

/// Reads the JSON inventory `text` (the contents of `file`) into `builder`.
pub(crate) fn read(text: &str, file: &Path, builder: &mut Builder) -> Result<(), InputError> {
    let plain: Option<Value> = yaml::parse(text, file, SHAPE_HINT)?;
    if plain.as_ref().is_some_and(is_yaml_shape) {
        return yaml_inv::read(text, file, builder);
    }
    let top: Option<OrderedMap<Entry>> = yaml::parse(text, file, SHAPE_HINT)?;
    let pos = |s: &Spanned<String>| yaml::pos(file, &s.referenced);
    let mut hostvars = OrderedMap::default();
    let mut listed: HashSet<String> = HashSet::new();
    for (name, Entry(doc)) in top.unwrap_or_default().0 {
        if name.value == "_meta" {
            if doc.hosts.is_some() || doc.children.is_some() || !doc.vars.0.is_empty() {
                return Err(InputError::new("`_meta` holds `hostvars` only")
                    .at(pos(&name))
                    .hint(SHAPE_HINT));
            }
            hostvars = doc.hostvars;
            continue;
        }
        if let Some(key) = doc.other.first() {
            return Err(InputError::new(format!(
                "unknown key `{}` in group '{}': a group has `hosts`, `children` and `vars`",
                key.value, name.value
            ))
            .at(pos(key))
            .hint(SHAPE_HINT));
        }
        if let Some((key, _)) = doc.hostvars.0.first() {
            return Err(InputError::new(format!(
                "`hostvars` belongs under `_meta`, not in group '{}'",
                name.value
            ))
            .at(pos(key))
            .hint(SHAPE_HINT));
        }
        let group = builder.group(&name.value, &pos(&name))?;
        for host in doc.hosts.unwrap_or_default() {
            builder.host(group, &host.value, &pos(&host))?;
            listed.insert(host.value);
        }
        for child in doc.children.unwrap_or_default() {
            let at = pos(&child);
            let child = builder.group(&child.value, &at)?;
            builder.child(group, child, &at)?;
        }
        for def in var_defs(doc.vars, file)? {
            builder.group_var(group, def);
        }
    }
    for (host, vars) in hostvars.0 {
        let defs = var_defs(vars, file)?;
        if !listed.contains(&host.value) {
            continue; // only in hostvars: not a host
        }
        let Some(h) = builder.find_host(&host.value) else {
            continue;
        };
        for def in defs {
            builder.host_var(h, def);
        }
    }
    Ok(())
}
