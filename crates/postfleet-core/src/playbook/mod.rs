//! Playbook: a YAML list of plays, each targeting a host pattern and declaring Postfix
//! instances. Loading checks everything that can be checked without a host; values that
//! hold tera syntax are compiled here and rendered per host by `render`.

use std::path::PathBuf;

use serde_json::Value;

use crate::error::SourcePos;
use crate::inventory::HostPattern;
use crate::model::{InstanceName, InstanceState};

pub mod checks;
mod load;
mod schema;
pub mod templates;

pub use load::{load, parse};
pub use templates::TemplateSet;

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
    /// Every template file and templated value, compiled once.
    pub templates: TemplateSet,
}

#[derive(Debug)]
pub struct Play {
    pub name: Option<String>,
    /// Where the play starts.
    pub pos: SourcePos,
    pub hosts: HostPattern,
    /// Below inventory vars (like Ansible role defaults).
    pub defaults: Vec<PlayVar>,
    /// Above inventory vars, below extra vars.
    pub vars: Vec<PlayVar>,
    pub instances: Vec<InstanceSpec>,
    /// `serial:`, with where it is written.
    pub serial: Option<(crate::rollout::Serial, SourcePos)>,
    /// `max_fail_percentage:` (0 to 100).
    pub max_fail_percentage: Option<(f64, SourcePos)>,
}

#[derive(Debug)]
pub struct PlayVar {
    pub name: String,
    pub pos: SourcePos,
    pub value: VarValue,
}

/// A variable's value, with the strings that hold tera syntax compiled.
#[derive(Debug)]
pub enum VarValue {
    /// Nothing to render inside.
    Plain(Value),
    Text(Text),
    List(Vec<VarValue>),
    Map(Vec<(String, VarValue)>),
}

/// A string from the playbook: rendered with tera for each host when it holds tera syntax.
#[derive(Debug, Clone)]
pub struct Text {
    pub raw: String,
    pub pos: SourcePos,
    /// Its compiled template in [`Playbook::templates`]; `None`: used as written.
    pub template: Option<String>,
}

/// A template file named in the playbook.
#[derive(Debug, Clone)]
pub struct TemplateRef {
    /// As written, and its name in [`Playbook::templates`].
    pub name: String,
    /// Where it was found.
    pub path: PathBuf,
    /// Where the playbook names it.
    pub pos: SourcePos,
}

/// One instance as a play declares it. `None` fields are left as earlier plays (or the
/// defaults: present, enabled) set them.
#[derive(Debug)]
pub struct InstanceSpec {
    pub name: InstanceName,
    pub pos: SourcePos,
    pub state: Option<InstanceState>,
    pub enabled: Option<bool>,
    pub group: Option<String>,
    pub main_cf_template: Option<TemplateRef>,
    pub main_cf: Vec<ParamSpec>,
    pub master_cf_template: Option<TemplateRef>,
    pub master_cf: Vec<MasterSpec>,
    pub tables: Vec<FileSpec>,
    pub files: Vec<FileSpec>,
    /// `verify:` (empty: none given; a later play's list replaces an earlier one's).
    pub verify: Vec<crate::model::Check>,
}

/// A main.cf parameter; `value: None` removes it.
#[derive(Debug)]
pub struct ParamSpec {
    pub name: String,
    pub pos: SourcePos,
    pub value: Option<ParamText>,
}

#[derive(Debug)]
pub enum ParamText {
    One(Text),
    /// Joined with ", " once rendered.
    List(Vec<Text>),
}

/// A master.cf entry (`postconf -M` semantics).
#[derive(Debug)]
pub struct MasterSpec {
    pub pos: SourcePos,
    pub service: Text,
    pub kind: crate::model::ServiceType,
    /// `state: absent`: remove the entry; the other fields are unused.
    pub remove: bool,
    pub private: Text,
    pub unpriv: Text,
    pub chroot: Text,
    pub wakeup: Text,
    pub maxproc: Text,
    /// Present unless `remove`.
    pub command: Option<Text>,
    pub args: Vec<Text>,
    /// Appended as `-o name=value`.
    pub options: Vec<OptionSpec>,
}

#[derive(Debug)]
pub struct OptionSpec {
    pub name: String,
    pub pos: SourcePos,
    pub value: ParamText,
}

/// A lookup table (`map_type` set) or another file the play owns.
#[derive(Debug)]
pub struct FileSpec {
    pub pos: SourcePos,
    /// Absolute, or relative to the instance's config directory.
    pub path: Text,
    pub map_type: Option<crate::model::MapType>,
    pub source: FileSource,
    pub mode: u32,
    pub secret: bool,
}

#[derive(Debug)]
pub enum FileSource {
    Template(TemplateRef),
    Content(Text),
}

#[cfg(test)]
mod tests;
