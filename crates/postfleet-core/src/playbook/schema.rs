//! The playbook as written: serde shapes with positions. Unknown keys are errors.

use std::fmt;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::inventory::yaml::OrderedMap;

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlayDoc {
    pub name: Option<Spanned<String>>,
    pub hosts: Spanned<String>,
    #[serde(default)]
    pub defaults: OrderedMap<Spanned<Value>>,
    #[serde(default)]
    pub vars: OrderedMap<Spanned<Value>>,
    pub instances: Option<Vec<Spanned<InstanceDoc>>>,
    /// Batches: a number, a percentage, or a list of them (Ansible's `serial:`).
    pub serial: Option<Spanned<Value>>,
    pub max_fail_percentage: Option<Spanned<Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveDeserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StateDoc {
    Present,
    Absent,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstanceDoc {
    pub name: Spanned<String>,
    pub state: Option<Spanned<StateDoc>>,
    pub enabled: Option<Spanned<bool>>,
    pub group: Option<Spanned<String>>,
    pub main_cf_template: Option<Spanned<String>>,
    #[serde(default)]
    pub main_cf: OrderedMap<Spanned<ParamValue>>,
    pub master_cf_template: Option<Spanned<String>>,
    pub master_cf: Option<Vec<Spanned<MasterDoc>>>,
    pub tables: Option<Vec<Spanned<TableDoc>>>,
    pub files: Option<Vec<Spanned<FileDoc>>>,
    /// Checks run after the instance is started, reloaded or restarted, besides the gate.
    pub verify: Option<Vec<Spanned<VerifyDoc>>>,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyDoc {
    /// `HOST:PORT` (`[IPv6]:PORT`): connect and read the greeting.
    pub smtp: Option<Spanned<String>>,
    /// The greeting's code for `smtp` (default 220).
    pub expect: Option<Spanned<u16>>,
    /// A shell command on the host: exit 0 passes.
    pub command: Option<Spanned<String>>,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MasterDoc {
    pub service: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub private: Option<Spanned<String>>,
    pub unpriv: Option<Spanned<String>>,
    pub chroot: Option<Spanned<String>>,
    pub wakeup: Option<Spanned<String>>,
    pub maxproc: Option<Spanned<String>>,
    pub command: Option<Spanned<String>>,
    pub args: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub options: OrderedMap<Spanned<ParamValue>>,
    pub state: Option<Spanned<StateDoc>>,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TableDoc {
    pub path: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub template: Option<Spanned<String>>,
    pub content: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub secret: Option<Spanned<bool>>,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDoc {
    pub path: Spanned<String>,
    pub template: Option<Spanned<String>>,
    pub content: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub secret: Option<Spanned<bool>>,
}

/// A main.cf (or `-o`) value as written: text (numbers as written, booleans as Postfix
/// spells them: yes/no), a list of such, or null.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ParamValue {
    Text(String),
    List(Vec<String>),
    Null,
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParamVisitor { in_list: false })
    }
}

struct ParamVisitor {
    in_list: bool,
}

/// One list item: only scalars.
struct ListItem(String);

impl<'de> Deserialize<'de> for ListItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(ParamVisitor { in_list: true })? {
            ParamValue::Text(text) => Ok(ListItem(text)),
            _ => Err(serde::de::Error::custom(
                "a list item must be a string, number or boolean",
            )),
        }
    }
}

impl<'de> Visitor<'de> for ParamVisitor {
    type Value = ParamValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.in_list {
            f.write_str("a string, number or boolean")
        } else {
            f.write_str("a string, number, boolean, list or null")
        }
    }

    fn visit_str<E>(self, text: &str) -> Result<ParamValue, E> {
        Ok(ParamValue::Text(text.to_string()))
    }

    fn visit_bool<E>(self, flag: bool) -> Result<ParamValue, E> {
        Ok(ParamValue::Text(if flag { "yes" } else { "no" }.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<ParamValue, E> {
        Ok(ParamValue::Text(n.to_string()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<ParamValue, E> {
        Ok(ParamValue::Text(n.to_string()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<ParamValue, E> {
        Ok(ParamValue::Text(n.to_string()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<ParamValue, E> {
        Ok(ParamValue::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<ParamValue, E> {
        Ok(ParamValue::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParamValue, A::Error> {
        if self.in_list {
            return Err(serde::de::Error::custom(
                "a list item must be a string, number or boolean",
            ));
        }
        let mut items = Vec::new();
        while let Some(ListItem(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(ParamValue::List(items))
    }
}
