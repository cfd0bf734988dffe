//! One play's declaration of an instance, rendered for one host and merged into what
//! earlier plays declared.

use crate::error::InputError;
use crate::model::{DesiredFile, DesiredInstance, MasterEntry, MasterService};
use crate::playbook::checks;
use crate::playbook::{
    FileSource, FileSpec, InstanceSpec, MasterSpec, ParamText, TemplateSet, Text,
};

pub(super) struct Renderer<'a> {
    pub templates: &'a TemplateSet,
    pub context: &'a tera::Context,
    pub host: &'a str,
    /// Config dirs of the host's other instances: this instance's files may not go there.
    pub other_dirs: &'a [String],
}

impl Renderer<'_> {
    fn text(&self, text: &Text) -> Result<String, InputError> {
        match &text.template {
            Some(name) => self.templates.render(name, self.context, self.host),
            None => Ok(text.raw.clone()),
        }
    }

    /// Renders `text` and checks the result; a failed check points at the value.
    fn checked<T>(
        &self,
        text: &Text,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, InputError> {
        let value = self.text(text)?;
        check(&value).map_err(|message| {
            InputError::new(message)
                .at(text.pos.clone())
                .host(self.host)
        })
    }

    fn param(&self, value: &ParamText, what: &str) -> Result<String, InputError> {
        let one_line = |v: &str| checks::one_line(what, v).map(|()| v.to_string());
        match value {
            ParamText::One(text) => self.checked(text, one_line),
            ParamText::List(items) => Ok(items
                .iter()
                .map(|item| self.checked(item, one_line))
                .collect::<Result<Vec<_>, _>>()?
                .join(", ")),
        }
    }

    /// Renders `spec` into `desired`, overriding what it sets.
    pub fn apply(
        &self,
        spec: &InstanceSpec,
        desired: &mut DesiredInstance,
    ) -> Result<(), InputError> {
        if let Some(state) = spec.state {
            desired.state = state;
        }
        if let Some(enabled) = spec.enabled {
            desired.enabled = enabled;
        }
        if let Some(group) = &spec.group {
            desired.group = Some(group.clone());
        }
        if !spec.verify.is_empty() {
            desired.verify = spec.verify.clone();
        }
        if let Some(template) = &spec.main_cf_template {
            desired.main_cf = Some(self.templates.render(
                &template.name,
                self.context,
                self.host,
            )?);
        }
        for param in &spec.main_cf {
            let value = match &param.value {
                Some(value) => Some(self.param(value, &format!("`{}`", param.name))?),
                None => None,
            };
            desired.main_cf_params.insert(param.name.clone(), value);
        }
        if let Some(template) = &spec.master_cf_template {
            desired.master_cf = Some(self.templates.render(
                &template.name,
                self.context,
                self.host,
            )?);
        }
        let mut seen_services: Vec<String> = Vec::new();
        for entry in &spec.master_cf {
            let service = self.master(entry)?;
            let key = service.key();
            if seen_services.contains(&key) {
                return Err(InputError::new(format!(
                    "master.cf entry {key} is declared twice for instance {}",
                    spec.name
                ))
                .at(entry.pos.clone())
                .host(self.host));
            }
            match desired.master_services.iter_mut().find(|s| s.key() == key) {
                Some(existing) => *existing = service,
                None => desired.master_services.push(service),
            }
            seen_services.push(key);
        }
        let config_dir = spec.name.config_dir();
        let mut seen_paths: Vec<String> = Vec::new();
        for file_spec in spec.tables.iter().chain(&spec.files) {
            let file = self.file(file_spec, &config_dir)?;
            if seen_paths.contains(&file.path) {
                return Err(InputError::new(format!(
                    "{} is declared twice for instance {}",
                    file.path, spec.name
                ))
                .at(file_spec.pos.clone())
                .host(self.host));
            }
            seen_paths.push(file.path.clone());
            match desired.files.iter_mut().find(|f| f.path == file.path) {
                Some(existing) => *existing = file,
                None => desired.files.push(file),
            }
        }
        Ok(())
    }

    fn master(&self, entry: &MasterSpec) -> Result<MasterService, InputError> {
        let service = self.checked(&entry.service, |s| {
            checks::master_service(s).map(|()| s.to_string())
        })?;
        if entry.remove {
            return Ok(MasterService {
                service,
                kind: entry.kind,
                entry: None,
            });
        }
        let flag = |field: &'static str, text: &Text| {
            self.checked(text, |v| checks::master_flag(field, v))
        };
        let private = flag("private", &entry.private)?;
        let unpriv = flag("unpriv", &entry.unpriv)?;
        let chroot = flag("chroot", &entry.chroot)?;
        let wakeup = self.checked(&entry.wakeup, checks::master_wakeup)?;
        let maxproc = self.checked(&entry.maxproc, checks::master_maxproc)?;
        let command = match &entry.command {
            Some(command) => self.checked(command, |c| {
                checks::master_command(c).map(|()| c.to_string())
            })?,
            // The loader refuses a present entry without a command.
            None => String::new(),
        };
        let mut args = Vec::with_capacity(entry.args.len() + 2 * entry.options.len());
        for arg in &entry.args {
            args.push(self.checked(arg, |a| checks::master_arg(a).map(|()| a.to_string()))?);
        }
        for option in &entry.options {
            let value = self.param(&option.value, &format!("option `{}`", option.name))?;
            args.push("-o".to_string());
            args.push(checks::master_option(&option.name, &value));
        }
        Ok(MasterService {
            service,
            kind: entry.kind,
            entry: Some(MasterEntry {
                private,
                unpriv,
                chroot,
                wakeup,
                maxproc,
                command,
                args,
            }),
        })
    }

    fn file(&self, spec: &FileSpec, config_dir: &str) -> Result<DesiredFile, InputError> {
        let path = self.checked(&spec.path, |p| {
            let path = checks::file_path(p, config_dir)?;
            checks::foreign_path(&path, self.other_dirs)?;
            Ok(path)
        })?;
        let content = match &spec.source {
            FileSource::Template(template) => {
                self.templates
                    .render(&template.name, self.context, self.host)?
            }
            FileSource::Content(text) => self.text(text)?,
        };
        Ok(DesiredFile {
            path,
            content: content.into_bytes(),
            mode: spec.mode,
            map_type: spec.map_type.clone(),
            secret: spec.secret,
        })
    }
}
