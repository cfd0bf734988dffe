//! YAML reading shared by the inventory, extra-vars files and playbooks: one parser setup,
//! errors turned into [`InputError`]s that name file:line:column.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned};

use crate::error::{InputError, SourcePos};

/// Parser settings: duplicate keys are errors (the default), and `0644`-style numbers stay
/// strings so file modes and zero-padded values keep the spelling the user wrote.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// Parses `text` (the contents of `file`) into `T`; a YAML or schema error becomes an
/// [`InputError`] at the position the parser reports. `shape_hint` describes the expected
/// layout, for errors about the layout.
pub(crate) fn parse<'de, T: Deserialize<'de>>(
    text: &'de str,
    file: &Path,
    shape_hint: &str,
) -> Result<T, InputError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|err| {
        let raw = serde_saphyr::DefaultMessageFormatter.format_message(err.without_snippet());
        let (message, hint) = user_message(&one_line(&raw), shape_hint);
        let mut error = InputError::new(message);
        error.hint = hint;
        error.pos = Some(match err.location() {
            Some(loc) => pos(file, &loc),
            None => SourcePos::new(file, 0, 0),
        });
        error
    })
}

/// The parser's message in the words of a config file's author, and a hint when one helps.
fn user_message(raw: &str, shape_hint: &str) -> (String, Option<String>) {
    if let Some(rest) = raw.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return (
            format!("duplicate key '{key}'"),
            Some("a key may appear only once in a mapping: merge the two entries".into()),
        );
    }
    let plain = |m: &str| (m.to_string(), None);
    let shape = |m: &str| (m.to_string(), Some(shape_hint.to_string()));
    match raw {
        "invalid boolean" => plain("expected true or false"),
        "expected string scalar" => plain("expected a single value (string or number), not a list or mapping"),
        "expected sequence start" => shape("expected a list (items starting with '- ')"),
        "expected mapping start" => shape("expected a mapping (`key: value` lines)"),
        _ if raw.starts_with("multiple YAML documents") => {
            plain("only one YAML document is allowed here (remove the '---' line)")
        }
        _ if raw.starts_with("missing field") || raw.starts_with("invalid type") => shape(raw),
        _ if raw.starts_with("while parsing") || raw.starts_with("while scanning") => (
            raw.to_string(),
            Some("check the indentation (spaces only) and the quoting on this line and the one before".into()),
        ),
        _ => plain(raw),
    }
}

/// Reads a UTF-8 text file named by the user; `what` says what it is ("inventory", ...).
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|err| {
        InputError::new(format!("cannot read {what} {}: {err}", path.display()))
            .hint("check the path and that the file is readable UTF-8 text")
    })
}

/// The position of a parsed node in `file`.
pub(crate) fn pos(file: &Path, loc: &Location) -> SourcePos {
    SourcePos::new(file, loc.line() as usize, loc.column() as usize)
}

/// Parser messages may quote user text: keep the error on one line.
fn one_line(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A YAML mapping with its keys' positions, in file order (serde maps lose the order).
/// `null` (an empty value like `hosts:`) reads as an empty mapping.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<Entries<V>>::deserialize(deserializer)?
            .map(|entries| OrderedMap(entries.0))
            .unwrap_or_default())
    }
}

/// The entries of a mapping that is present (`OrderedMap` adds the null case).
struct Entries<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Variable names must be usable in templates: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a variable name read from `file`, pointing at its key when it is unusable.
pub(crate) fn check_var_name(name: &Spanned<String>, file: &Path) -> Result<(), InputError> {
    check_var_name_at(&name.value, &pos(file, &name.referenced))
}

/// Checks a variable name written at `at` (a YAML key, an INI `NAME=`).
pub(crate) fn check_var_name_at(name: &str, at: &SourcePos) -> Result<(), InputError> {
    if is_var_name(name) {
        return Ok(());
    }
    Err(
        InputError::new(format!("variable name '{name}' is not usable in templates"))
            .at(at.clone())
            .hint("use letters, digits and '_' (not starting with a digit)"),
    )
}
