//! Reading a playbook: schema, template files, and every check that needs no host.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_saphyr::Spanned;

use super::checks;
use super::schema::{
    FileDoc, InstanceDoc, MasterDoc, ParamValue, PlayDoc, StateDoc, TableDoc, VerifyDoc,
};
use super::templates::{holds_template, is_template, TemplateSet};
use super::{
    FileSource, FileSpec, InstanceSpec, MasterSpec, OptionSpec, ParamSpec, ParamText, Play,
    PlayVar, Playbook, TemplateRef, Text, VarValue,
};
use crate::error::{InputError, SourcePos};
use crate::inventory::yaml::{self, OrderedMap};
use crate::inventory::HostPattern;
use crate::model::{InstanceName, InstanceState};

const SCHEMA_HINT: &str = "a playbook is a list of plays: `- hosts: PATTERN` with `instances:` (and optional `name`, `vars`, `defaults`)";

/// Reads the playbook at `path` and the template files it names.
pub fn load(path: &Path) -> Result<Playbook, InputError> {
    let text = yaml::read_text(path, "playbook")?;
    parse(&text, path)
}

/// [`load`] on text already read; template files are still looked up next to `path`.
pub fn parse(text: &str, path: &Path) -> Result<Playbook, InputError> {
    let docs: Option<Vec<Spanned<PlayDoc>>> = yaml::parse(text, path, SCHEMA_HINT)?;
    let docs = docs.unwrap_or_default();
    if docs.is_empty() {
        return Err(InputError::new("the playbook has no plays")
            .at(SourcePos::new(path, 1, 1))
            .hint(SCHEMA_HINT));
    }
    let mut loader = Loader {
        file: path.to_path_buf(),
        // Empty for a playbook in the current directory: lookups stay relative to it.
        dir: path.parent().unwrap_or(Path::new("")).to_path_buf(),
        text,
        templates: TemplateSet::default(),
    };
    let plays = docs
        .into_iter()
        .map(|doc| loader.play(doc))
        .collect::<Result<Vec<_>, _>>()?;
    let mut templates = loader.templates;
    templates.compile()?;
    Ok(Playbook {
        path: path.to_path_buf(),
        plays,
        templates,
    })
}

struct Loader<'t> {
    file: PathBuf,
    dir: PathBuf,
    text: &'t str,
    templates: TemplateSet,
}

fn fail(pos: SourcePos, message: impl Into<String>) -> InputError {
    InputError::new(message).at(pos)
}

impl Loader<'_> {
    fn pos<T>(&self, node: &Spanned<T>) -> SourcePos {
        yaml::pos(&self.file, &node.referenced)
    }

    /// A string value: compiled when it holds tera syntax.
    fn text(&mut self, raw: String, pos: SourcePos) -> Text {
        let template = is_template(&raw).then(|| self.templates.add_inline(&raw, &pos, self.text));
        Text { raw, pos, template }
    }

    fn spanned_text(&mut self, node: Spanned<String>) -> Text {
        let pos = self.pos(&node);
        self.text(node.value, pos)
    }

    /// Runs `check` now on a value written as is; templated values are checked per host.
    fn check_static(
        &self,
        text: &Text,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<(), InputError> {
        if text.template.is_none() {
            check(&text.raw).map_err(|message| fail(text.pos.clone(), message))?;
        }
        Ok(())
    }

    fn play(&mut self, doc: Spanned<PlayDoc>) -> Result<Play, InputError> {
        let pos = self.pos(&doc);
        let doc = doc.value;
        let hosts_pos = self.pos(&doc.hosts);
        let hosts = HostPattern::parse(&doc.hosts.value).map_err(|m| {
            fail(hosts_pos, m)
                .hint("patterns: all, a group or host name, globs like mx*, a:b, a:&b, a:!b")
        })?;
        let Some(instance_docs) = doc.instances else {
            return Err(fail(pos, "this play has no `instances:`")
                .hint("a play declares the Postfix instances of its hosts under `instances:`"));
        };
        let defaults = self.play_vars(doc.defaults)?;
        let vars = self.play_vars(doc.vars)?;
        let serial = match doc.serial {
            None => None,
            Some(spanned) => {
                let at = self.pos(&spanned);
                // 5, "25%", or a list of them
                let text = match &spanned.value {
                    Value::Array(items) => items
                        .iter()
                        .map(|item| match item {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let serial =
                    crate::rollout::Serial::parse(&text).map_err(|m| fail(at.clone(), m))?;
                Some((serial, at))
            }
        };
        let max_fail_percentage = match doc.max_fail_percentage {
            None => None,
            Some(spanned) => {
                let at = self.pos(&spanned);
                let percent = match &spanned.value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().trim_end_matches('%').parse::<f64>().ok(),
                    _ => None,
                }
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| {
                    fail(
                        at.clone(),
                        "max_fail_percentage must be a number from 0 to 100",
                    )
                })?;
                Some((percent, at))
            }
        };
        let mut instances: Vec<InstanceSpec> = Vec::new();
        for instance_doc in instance_docs {
            let instance = self.instance(instance_doc)?;
            if let Some(first) = instances.iter().find(|i| i.name == instance.name) {
                return Err(fail(
                    instance.pos.clone(),
                    format!(
                        "instance '{}' is declared twice in this play (first at line {})",
                        instance.name, first.pos.line
                    ),
                )
                .hint("merge the two entries (a later play may declare it again to override)"));
            }
            instances.push(instance);
        }
        Ok(Play {
            name: doc.name.map(|n| n.value),
            pos,
            hosts,
            defaults,
            vars,
            instances,
            serial,
            max_fail_percentage,
        })
    }

    fn play_vars(&mut self, vars: OrderedMap<Spanned<Value>>) -> Result<Vec<PlayVar>, InputError> {
        let mut out = Vec::with_capacity(vars.0.len());
        for (name, value) in vars.0 {
            yaml::check_var_name(&name, &self.file)?;
            let pos = self.pos(&value);
            let value = self.var_value(value.value, &pos);
            out.push(PlayVar {
                name: name.value,
                pos,
                value,
            });
        }
        Ok(out)
    }

    fn var_value(&mut self, value: Value, pos: &SourcePos) -> VarValue {
        if !holds_template(&value) {
            return VarValue::Plain(value);
        }
        match value {
            Value::String(s) => VarValue::Text(self.text(s, pos.clone())),
            Value::Array(items) => {
                VarValue::List(items.into_iter().map(|v| self.var_value(v, pos)).collect())
            }
            Value::Object(map) => VarValue::Map(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = self.var_value(v, pos);
                        (k, v)
                    })
                    .collect(),
            ),
            other => VarValue::Plain(other),
        }
    }

    /// One `verify:` entry: `smtp: HOST:PORT` (with `expect:`, default 220) or `command:`.
    fn check(&mut self, doc: Spanned<VerifyDoc>) -> Result<crate::model::Check, InputError> {
        let at = self.pos(&doc);
        let doc = doc.value;
        let hint = "a check is `smtp: HOST:PORT` (optionally `expect: CODE`, default 220) or `command: SHELL COMMAND`";
        match (doc.smtp, doc.command) {
            (Some(smtp), None) => {
                let pos = self.pos(&smtp);
                let text = smtp.value.trim();
                let (host, port) = match text.strip_prefix('[') {
                    Some(rest) => rest.split_once("]:"),
                    None => text.rsplit_once(':').filter(|(h, _)| !h.contains(':')),
                }
                .filter(|(h, _)| !h.is_empty() && !h.contains(char::is_whitespace))
                .ok_or_else(|| {
                    fail(pos.clone(), format!("`{text}` is not HOST:PORT")).hint(hint)
                })?;
                let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    fail(pos.clone(), format!("`{port}` is not a port")).hint(hint)
                })?;
                let expect = match doc.expect {
                    Some(code) if (200..=599).contains(&code.value) => code.value,
                    Some(code) => {
                        return Err(fail(
                            self.pos(&code),
                            "expect: an SMTP reply code from 200 to 599",
                        ))
                    }
                    None => 220,
                };
                Ok(crate::model::Check::Smtp {
                    host: host.to_string(),
                    port,
                    expect,
                })
            }
            (None, Some(command)) if doc.expect.is_none() => {
                let pos = self.pos(&command);
                if command.value.trim().is_empty() || command.value.contains('\0') {
                    return Err(fail(pos, "command: a shell command, not empty").hint(hint));
                }
                Ok(crate::model::Check::Command(command.value))
            }
            _ => Err(fail(at, "a check takes `smtp:` or `command:`, one of them").hint(hint)),
        }
    }

    fn instance(&mut self, doc: Spanned<InstanceDoc>) -> Result<InstanceSpec, InputError> {
        let doc = doc.value;
        let pos = self.pos(&doc.name);
        let name = InstanceName::parse(&doc.name.value).map_err(|m| {
            fail(pos.clone(), m)
                .hint("use \"-\" (or default) for the default instance, or postfix-NAME")
        })?;
        let group = match doc.group {
            Some(group) => {
                checks::instance_group(&group.value).map_err(|m| fail(self.pos(&group), m))?;
                Some(group.value)
            }
            None => None,
        };
        let main_cf_template = doc.main_cf_template.map(|t| self.template(t)).transpose()?;
        let master_cf_template = doc
            .master_cf_template
            .map(|t| self.template(t))
            .transpose()?;
        let mut main_cf = Vec::new();
        for (param, value) in doc.main_cf.0 {
            let param_pos = self.pos(&param);
            checks::param_name(&param.value).map_err(|m| fail(param_pos.clone(), m))?;
            let value = self.param_text(value, &format!("`{}`", param.value))?;
            main_cf.push(ParamSpec {
                name: param.value,
                pos: param_pos,
                value,
            });
        }
        let mut master_cf = Vec::new();
        for entry in doc.master_cf.unwrap_or_default() {
            master_cf.push(self.master(entry)?);
        }
        let mut tables = Vec::new();
        for table in doc.tables.unwrap_or_default() {
            tables.push(self.table(table, &name)?);
        }
        let mut files = Vec::new();
        for file in doc.files.unwrap_or_default() {
            files.push(self.file(file, &name)?);
        }
        let mut verify = Vec::new();
        for check in doc.verify.unwrap_or_default() {
            verify.push(self.check(check)?);
        }
        Ok(InstanceSpec {
            verify,
            name,
            pos,
            state: doc.state.map(|s| state(s.value)),
            enabled: doc.enabled.map(|e| e.value),
            group,
            main_cf_template,
            main_cf,
            master_cf_template,
            master_cf,
            tables,
            files,
        })
    }

    /// A parameter or option value; `None` for null.
    fn param_text(
        &mut self,
        value: Spanned<ParamValue>,
        what: &str,
    ) -> Result<Option<ParamText>, InputError> {
        let pos = self.pos(&value);
        let texts = match value.value {
            ParamValue::Null => return Ok(None),
            ParamValue::Text(raw) => ParamText::One(self.text(raw, pos)),
            ParamValue::List(items) => ParamText::List(
                items
                    .into_iter()
                    .map(|raw| self.text(raw, pos.clone()))
                    .collect(),
            ),
        };
        let all: Vec<&Text> = match &texts {
            ParamText::One(text) => vec![text],
            ParamText::List(items) => items.iter().collect(),
        };
        for text in all {
            self.check_static(text, |v| checks::one_line(what, v))?;
        }
        Ok(Some(texts))
    }

    fn master(&mut self, doc: Spanned<MasterDoc>) -> Result<MasterSpec, InputError> {
        let pos = self.pos(&doc);
        let doc = doc.value;
        let kind =
            checks::master_type(&doc.kind.value).map_err(|m| fail(self.pos(&doc.kind), m))?;
        let remove = doc.state.is_some_and(|s| s.value == StateDoc::Absent);
        let service = self.spanned_text(doc.service);
        self.check_static(&service, checks::master_service)?;
        let private = self.master_field(doc.private, &pos);
        let unpriv = self.master_field(doc.unpriv, &pos);
        let chroot = self.master_field(doc.chroot, &pos);
        let wakeup = self.master_field(doc.wakeup, &pos);
        let maxproc = self.master_field(doc.maxproc, &pos);
        for (name, text) in [
            ("private", &private),
            ("unpriv", &unpriv),
            ("chroot", &chroot),
        ] {
            self.check_static(text, |v| checks::master_flag(name, v).map(drop))?;
        }
        self.check_static(&wakeup, |v| checks::master_wakeup(v).map(drop))?;
        self.check_static(&maxproc, |v| checks::master_maxproc(v).map(drop))?;
        let command = doc.command.map(|c| self.spanned_text(c));
        match &command {
            Some(command) => self.check_static(command, checks::master_command)?,
            None if !remove => {
                return Err(fail(
                    pos,
                    "a master.cf entry needs a `command` (unless `state: absent`)",
                )
                .hint("for a throttled clone of smtp: `command: smtp`"));
            }
            None => {}
        }
        let args: Vec<Text> = doc
            .args
            .unwrap_or_default()
            .into_iter()
            .map(|a| self.spanned_text(a))
            .collect();
        for arg in &args {
            self.check_static(arg, checks::master_arg)?;
        }
        let mut options = Vec::new();
        for (name, value) in doc.options.0 {
            let option_pos = self.pos(&name);
            checks::param_name(&name.value).map_err(|m| fail(option_pos.clone(), m))?;
            let Some(value) = self.param_text(value, &format!("option `{}`", name.value))? else {
                return Err(
                    fail(option_pos, format!("option `{}` needs a value", name.value))
                        .hint("write `name: \"\"` for an empty value"),
                );
            };
            options.push(OptionSpec {
                name: name.value,
                pos: option_pos,
                value,
            });
        }
        Ok(MasterSpec {
            pos,
            service,
            kind,
            remove,
            private,
            unpriv,
            chroot,
            wakeup,
            maxproc,
            command,
            args,
            options,
        })
    }

    /// One of the five short master.cf fields; "-" (Postfix's default) when not given.
    fn master_field(&mut self, node: Option<Spanned<String>>, entry: &SourcePos) -> Text {
        match node {
            Some(node) => self.spanned_text(node),
            None => Text {
                raw: "-".into(),
                pos: entry.clone(),
                template: None,
            },
        }
    }

    fn table(
        &mut self,
        doc: Spanned<TableDoc>,
        instance: &InstanceName,
    ) -> Result<FileSpec, InputError> {
        let pos = self.pos(&doc);
        let doc = doc.value;
        let kind = match doc.kind {
            Some(kind) => checks::table_type(&kind.value).map_err(|m| fail(self.pos(&kind), m))?,
            None => crate::model::MapType::new("hash"),
        };
        let what = FileParts {
            pos,
            path: doc.path,
            template: doc.template,
            content: doc.content,
            mode: doc.mode,
            secret: doc.secret,
        };
        self.file_spec(what, Some(kind), instance, "a table")
    }

    fn file(
        &mut self,
        doc: Spanned<FileDoc>,
        instance: &InstanceName,
    ) -> Result<FileSpec, InputError> {
        let pos = self.pos(&doc);
        let doc = doc.value;
        let what = FileParts {
            pos,
            path: doc.path,
            template: doc.template,
            content: doc.content,
            mode: doc.mode,
            secret: doc.secret,
        };
        self.file_spec(what, None, instance, "a file")
    }

    fn file_spec(
        &mut self,
        parts: FileParts,
        map_type: Option<crate::model::MapType>,
        instance: &InstanceName,
        what: &str,
    ) -> Result<FileSpec, InputError> {
        let path = self.spanned_text(parts.path);
        let config_dir = instance.config_dir();
        self.check_static(&path, |p| checks::file_path(p, &config_dir).map(drop))?;
        let source = match (parts.template, parts.content) {
            (Some(template), None) => FileSource::Template(self.template(template)?),
            (None, Some(content)) => FileSource::Content(self.spanned_text(content)),
            _ => {
                return Err(fail(
                    parts.pos,
                    format!("{what} needs exactly one of `template` or `content`"),
                ))
            }
        };
        let secret = parts.secret.is_some_and(|s| s.value);
        let mode = match parts.mode {
            Some(mode) => checks::mode(&mode.value).map_err(|m| fail(self.pos(&mode), m))?,
            // Secrets (passwords, keys) are not world-readable unless asked.
            None if secret => 0o600,
            None => 0o644,
        };
        Ok(FileSpec {
            pos: parts.pos,
            path,
            map_type,
            source,
            mode,
            secret,
        })
    }

    /// Finds a template file: <playbook dir>/templates/X, <playbook dir>/../templates/X,
    /// <playbook dir>/X (or X itself when absolute), and loads it with what it includes.
    fn template(&mut self, name: Spanned<String>) -> Result<TemplateRef, InputError> {
        let pos = self.pos(&name);
        let path = self.load_template(&name.value, &pos)?;
        Ok(TemplateRef {
            name: name.value,
            path,
            pos,
        })
    }

    fn load_template(&mut self, name: &str, pos: &SourcePos) -> Result<PathBuf, InputError> {
        let candidates: Vec<PathBuf> = if Path::new(name).is_absolute() {
            vec![PathBuf::from(name)]
        } else {
            vec![
                self.dir.join("templates").join(name),
                self.dir.join("../templates").join(name),
                self.dir.join(name),
            ]
        };
        let Some(path) = candidates.iter().find(|p| p.is_file()).cloned() else {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(fail(pos.clone(), format!("template '{name}' not found"))
                .hint(format!("tried: {}", tried.join(", "))));
        };
        if self.templates.has(name) {
            return Ok(path);
        }
        let text = std::fs::read_to_string(&path).map_err(|err| {
            fail(
                pos.clone(),
                format!("cannot read template {}: {err}", path.display()),
            )
        })?;
        let included = included_templates(&text);
        self.templates.add_file(name, &path, text);
        for (child, line, column) in included {
            self.load_template(&child, &SourcePos::new(&path, line, column))?;
        }
        Ok(path)
    }
}

/// The parts tables and files share.
struct FileParts {
    pos: SourcePos,
    path: Spanned<String>,
    template: Option<Spanned<String>>,
    content: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    secret: Option<Spanned<bool>>,
}

fn state(doc: StateDoc) -> InstanceState {
    match doc {
        StateDoc::Present => InstanceState::Present,
        StateDoc::Absent => InstanceState::Absent,
    }
}

/// Templates named by `{% include "x" %}`, `{% import "x" as m %}`, `{% extends "x" %}`,
/// with the position of the tag.
fn included_templates(text: &str) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for (line_index, line) in text.lines().enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(start) = rest.find("{%") {
            let tag = rest[start + 2..].trim_start_matches(['-', ' ', '\t']);
            let keyword_len = ["include", "import", "extends"]
                .iter()
                .find(|k| tag.starts_with(*k))
                .map(|k| k.len());
            if let Some(len) = keyword_len {
                let after = tag[len..].trim_start();
                if let Some(quote) = after
                    .chars()
                    .next()
                    .filter(|c| matches!(c, '"' | '\'' | '`'))
                {
                    if let Some(end) = after[1..].find(quote) {
                        let name = after[1..1 + end].to_string();
                        let column = line[..offset + start].chars().count() + 1;
                        if seen.insert(name.clone()) {
                            found.push((name, line_index + 1, column));
                        }
                    }
                }
            }
            offset += start + 2;
            rest = &rest[start + 2..];
        }
    }
    found
}
