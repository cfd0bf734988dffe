//! `-e` arguments: `key=value` words, `@file.yml`, or an inline JSON / YAML flow mapping.

use std::path::Path;

use serde_json::Value;
use serde_saphyr::Spanned;

use super::yaml::{self, OrderedMap};
use super::VarMap;
use crate::error::InputError;

const FORMS_HINT: &str =
    "use -e key=value (several words allowed), -e @vars.yml or -e '{\"key\": \"value\"}'";

/// Parses every `-e` argument in order; a later one overrides an earlier one.
pub fn parse(args: &[String]) -> Result<VarMap, InputError> {
    let mut vars = VarMap::new();
    for (index, arg) in args.iter().enumerate() {
        // Errors name the argument by its place, never by its text: it may hold a secret.
        let label = format!("-e #{}", index + 1);
        let trimmed = arg.trim();
        if let Some(file) = trimmed.strip_prefix('@') {
            let path = Path::new(file);
            let text = yaml::read_text(path, "extra-vars file")?;
            merge_mapping(&mut vars, &text, path)?;
        } else if trimmed.starts_with('{') {
            merge_mapping(&mut vars, trimmed, Path::new(&label))?;
        } else {
            merge_words(&mut vars, arg, &label)?;
        }
    }
    Ok(vars)
}

/// A YAML mapping of variables (JSON is YAML): `name` labels it in errors.
fn merge_mapping(vars: &mut VarMap, text: &str, name: &Path) -> Result<(), InputError> {
    let hint = "extra vars are a mapping of names to values";
    let map: Option<OrderedMap<Spanned<Value>>> = yaml::parse(text, name, hint)?;
    for (key, value) in map.unwrap_or_default().0 {
        yaml::check_var_name(&key, name)?;
        vars.insert(key.value, value.value);
    }
    Ok(())
}

/// `key=value` words, split like a shell would (`-e 'motd="a b" port=25'`); values are strings.
fn merge_words(vars: &mut VarMap, arg: &str, label: &str) -> Result<(), InputError> {
    let words = shlex::split(arg)
        .ok_or_else(|| InputError::new(format!("{label}: unbalanced quotes")).hint(FORMS_HINT))?;
    if words.is_empty() {
        return Err(InputError::new("-e needs an argument").hint(FORMS_HINT));
    }
    for (n, word) in words.iter().enumerate() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(
                InputError::new(format!("{label}: word {} is not key=value", n + 1))
                    .hint(FORMS_HINT),
            );
        };
        if !yaml::is_var_name(key) {
            return Err(InputError::new(format!(
                "{label}: word {}: variable name '{key}' is not usable in templates",
                n + 1
            ))
            .hint("use letters, digits and '_' (not starting with a digit)"));
        }
        vars.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(())
}
