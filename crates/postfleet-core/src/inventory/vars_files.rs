//! `group_vars/` and `host_vars/` beside each inventory source (the file's directory; a
//! directory source's own), as Ansible's host_group_vars plugin finds them: for an existing
//! group or host NAME, `NAME` (a file, or a directory whose files are read in name order),
//! else the first of `NAME.yml`, `NAME.yaml`, `NAME.json`. Each file is a YAML mapping of
//! variables. Files for groups or hosts the inventory does not have are not read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_saphyr::Spanned;

use super::build::{Builder, GroupId, HostId, VarDef};
use super::walk::{self, files_under, list, Kind};
use super::yaml::{self, OrderedMap};
use super::yaml_inv::{var_defs, VAULT_HINT};
use crate::error::{InputError, SourcePos};

/// The extensions of vars files (Ansible's YAML_FILENAME_EXTENSIONS); none is fine too.
const EXTENSIONS: [&str; 3] = [".yml", ".yaml", ".json"];

const HINT: &str = "a group_vars/ or host_vars/ file is a YAML mapping of variable names to values";

/// What one directory's group_vars/ and host_vars/ give.
#[derive(Default)]
struct DirVars {
    groups: Vec<(GroupId, Vec<VarDef>)>,
    hosts: Vec<(HostId, Vec<VarDef>)>,
}

/// The directory whose group_vars/ and host_vars/ go with source `source`.
pub(crate) fn base_dir(source: &Path) -> PathBuf {
    if source.is_dir() {
        return source.to_path_buf();
    }
    match source.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads the vars files beside every source into `builder`, source by source.
pub(crate) fn load(builder: &mut Builder, sources: &[PathBuf]) -> Result<(), InputError> {
    let mut read: HashMap<PathBuf, DirVars> = HashMap::new();
    for (index, source) in sources.iter().enumerate() {
        let dir = base_dir(source);
        if !read.contains_key(&dir) {
            let found = dir_vars(&dir, builder)?;
            read.insert(dir.clone(), found);
        }
        let found = &read[&dir];
        for (group, defs) in &found.groups {
            builder.group_file_vars(index, *group, defs.clone());
        }
        for (host, defs) in &found.hosts {
            builder.host_file_vars(index, *host, defs.clone());
        }
    }
    Ok(())
}

fn dir_vars(dir: &Path, builder: &Builder) -> Result<DirVars, InputError> {
    let mut found = DirVars::default();
    let groups: Vec<(GroupId, String)> = builder
        .group_names()
        .map(|(g, n)| (g, n.to_string()))
        .collect();
    let hosts: Vec<(HostId, String)> = builder
        .host_names()
        .map(|(h, n)| (h, n.to_string()))
        .collect();
    found.groups = entity_vars(&dir.join("group_vars"), &groups)?;
    found.hosts = entity_vars(&dir.join("host_vars"), &hosts)?;
    Ok(found)
}

/// The vars of each named entity that has files in `dir`.
fn entity_vars(
    dir: &Path,
    names: &[(usize, String)],
) -> Result<Vec<(usize, Vec<VarDef>)>, InputError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    // One listing for every name.
    let mut entries: HashMap<String, Kind> = HashMap::new();
    for entry in list(dir)? {
        if let Some(name) = entry.file_name().and_then(|n| n.to_str()) {
            entries.insert(name.to_string(), walk::kind(&entry));
        }
    }
    let mut out = Vec::new();
    for (id, name) in names {
        if name.starts_with('/') {
            continue;
        }
        let files = match entries.get(name.as_str()) {
            Some(Kind::Dir) => files_under(&dir.join(name), &vars_dir_keeps)?,
            Some(Kind::File) => vec![dir.join(name)],
            Some(Kind::Special) => return Err(walk::special_error(&dir.join(name))),
            None => EXTENSIONS
                .iter()
                .map(|ext| format!("{name}{ext}"))
                .find(|file| entries.get(file) == Some(&Kind::File))
                .map(|file| vec![dir.join(file)])
                .unwrap_or_default(),
        };
        let mut defs = Vec::new();
        for file in files {
            defs.extend(read_vars_file(&file)?);
        }
        if !defs.is_empty() {
            out.push((*id, defs));
        }
    }
    Ok(out)
}

/// What a `group_vars/NAME/` directory holds, as Ansible reads it: hidden entries and
/// backups (`~`) left out, subdirectories without an extension read too, files with no
/// extension or a vars one.
fn vars_dir_keeps(name: &str, is_dir: bool) -> bool {
    let ext = name.rfind('.').map(|i| &name[i..]);
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    if is_dir {
        ext.is_none()
    } else {
        ext.is_none_or(|e| EXTENSIONS.contains(&e))
    }
}

/// One vars file: its variables, in the order written.
fn read_vars_file(file: &Path) -> Result<Vec<VarDef>, InputError> {
    let text = yaml::read_text(file, "vars file")?;
    if text.trim_start().starts_with("$ANSIBLE_VAULT") {
        return Err(InputError::new(
            "this vars file is encrypted with ansible-vault, which postfleet cannot decrypt",
        )
        .at(SourcePos::new(file, 1, 1))
        .hint(VAULT_HINT));
    }
    let vars: Option<OrderedMap<Spanned<Value>>> = yaml::parse(&text, file, HINT)?;
    var_defs(vars.unwrap_or_default(), file)
}
