//! Reading inventory sources (files in YAML, INI or JSON, told apart by their content, and
//! directories of them) and resolving each host: its groups, merged variables and connection
//! settings.

use std::path::{Path, PathBuf};

use super::build::Builder;
use super::connection::absolute_dir;
use super::{ini, json, vars_files, walk, yaml, yaml_inv, Inventory, VarMap};
use crate::error::{InputError, SourcePos};

/// Reads the inventory at `path` (a file or a directory) and resolves every host;
/// `extra_vars` (from `-e`) override everything, connection variables included.
pub fn load(path: &Path, extra_vars: &VarMap) -> Result<Inventory, InputError> {
    load_all(&[path.to_path_buf()], extra_vars)
}

/// Reads every inventory source in order (files or directories, each with the group_vars/
/// and host_vars/ beside it), merges them as Ansible does (at the same precedence, a later
/// source wins) and resolves every host. Relative paths in `extra_vars` are taken from the
/// first source's directory.
pub fn load_all(paths: &[PathBuf], extra_vars: &VarMap) -> Result<Inventory, InputError> {
    let mut builder = Builder::new();
    for path in paths {
        if path.as_os_str().is_empty() {
            return Err(InputError::new("an inventory path is empty")
                .hint("give -i a file or a directory (a trailing comma in -i or POSTFLEET_INVENTORY leaves an empty one); Ansible's host lists (-i 'h1,h2,') are not read: write the hosts in a file"));
        }
        if path.is_dir() {
            for file in walk::files_under(path, &|name, _| !ignored(name))? {
                read_path(&file, &mut builder)?;
            }
        } else {
            read_path(path, &mut builder)?;
        }
    }
    builder.reconcile();
    vars_files::load(&mut builder, paths)?;
    let extra_base = match paths.first() {
        Some(first) => std::path::absolute(vars_files::base_dir(first))
            .unwrap_or_else(|_| vars_files::base_dir(first)),
        None => PathBuf::from("."),
    };
    builder.finish(paths.to_vec(), extra_vars, &extra_base)
}

/// [`load`] on the text of one file already read: `path` names it in errors and anchors
/// relative paths; the vars files beside it are not read.
pub fn parse(text: &str, path: &Path, extra_vars: &VarMap) -> Result<Inventory, InputError> {
    let mut builder = Builder::new();
    read_file(text, path, &mut builder)?;
    builder.finish(vec![path.to_path_buf()], extra_vars, &absolute_dir(path))
}

fn read_path(path: &Path, builder: &mut Builder) -> Result<(), InputError> {
    let text = yaml::read_text(path, "inventory")?;
    read_file(&text, path, builder)
}

/// Entries of an inventory directory that are not inventory sources: Ansible's ignored names
/// and extensions (INVENTORY_IGNORE_EXTS).
fn ignored(name: &str) -> bool {
    const NAMES: [&str; 3] = ["group_vars", "host_vars", "vars_plugins"];
    const EXTENSIONS: [&str; 12] = [
        ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
        ".retry",
    ];
    name.starts_with('.') || NAMES.contains(&name) || EXTENSIONS.iter().any(|e| name.ends_with(e))
}

/// An inventory format, as the content tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    /// Read as INI; `Some(line)`: because that line cannot start YAML (a guess).
    Ini(Option<usize>),
    Json,
    /// `#!`: an executable inventory script.
    Script,
}

/// Tells the format from the first line that is not blank or a comment: `{` is JSON; a
/// `[section]`, a `;` comment or a line that cannot start a YAML mapping (no `key:`, not
/// `---`, `%YAML`, `- `) is INI; anything else YAML.
pub(crate) fn detect(text: &str) -> Format {
    if text.starts_with("#!") {
        return Format::Script;
    }
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('{') {
            return Format::Json;
        }
        if line.starts_with(';') || ini::is_section_header(line) {
            return Format::Ini(None);
        }
        if line.starts_with("---")
            || line.starts_with('%')
            || line == "-"
            || line.starts_with("- ")
            || line.starts_with("? ")
            || looks_like_yaml_key(line)
        {
            return Format::Yaml;
        }
        return Format::Ini(Some(index + 1));
    }
    Format::Yaml
}

/// `KEY:` or `KEY: value` with a KEY of one word (group names have no spaces), quoted or
/// not, without `=` (which would be INI's).
fn looks_like_yaml_key(line: &str) -> bool {
    let key_end = match line.chars().next() {
        Some(q @ ('"' | '\'')) => match line[1..].find(q) {
            Some(i) => i + 2,
            None => return false,
        },
        _ => match line.find(':') {
            Some(i) => i,
            None => return false,
        },
    };
    let key = &line[..key_end];
    let rest = &line[key_end..];
    let Some(after) = rest.trim_start().strip_prefix(':') else {
        return false;
    };
    !key.is_empty()
        && !key.contains(char::is_whitespace)
        && !key.contains('=')
        && !key.starts_with('[')
        && (after.is_empty() || after.starts_with(char::is_whitespace))
}

/// One inventory file into `builder`, in the format its content says.
fn read_file(text: &str, path: &Path, builder: &mut Builder) -> Result<(), InputError> {
    builder.start_file(path);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match detect(text) {
        Format::Script => Err(InputError::new(
            "this is an inventory script (it starts with #!): postfleet does not run inventory scripts",
        )
        .at(SourcePos::new(path, 1, 1))
        .hint(format!(
            "save what it lists as JSON and give postfleet that file: ansible-inventory -i {} --list > inventory.json",
            path.display()
        ))),
        Format::Json => json::read(text, path, builder),
        Format::Ini(guess) => ini::read(text, path, builder).map_err(|e| match guess {
            Some(line) => read_as(
                e,
                &format!("read as an INI inventory, as line {line} is not YAML (no `key:`)"),
            ),
            None => e,
        }),
        Format::Yaml => yaml_inv::read(text, path, builder).map_err(|e| {
            if e.pos.as_ref().is_some_and(|p| p.file == path) && yaml_parse_error(&e) {
                read_as(e, "read as a YAML inventory, as its first line looks like `key:`")
            } else {
                e
            }
        }),
    }
}

/// Whether `e` is the YAML parser's complaint (not ours about what the YAML says).
fn yaml_parse_error(e: &InputError) -> bool {
    e.message.starts_with("while ")
        || e.message.starts_with("invalid type")
        || e.message.starts_with("expected a mapping")
}

/// `e` with a note on the format it was read as, after its hint.
fn read_as(mut e: InputError, note: &str) -> InputError {
    e.hint = Some(match e.hint.take() {
        Some(hint) => format!("{hint} ({note})"),
        None => note.to_string(),
    });
    e
}
