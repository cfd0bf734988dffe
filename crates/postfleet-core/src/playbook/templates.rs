//! The playbook's templates: every template file and every templated string value, compiled
//! once into one tera instance; render errors mapped back to file:line:column.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{InputError, SourcePos};

/// Whether `text` holds tera syntax (else it is used as it is, without tera).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Whether a variable's value holds tera syntax anywhere inside.
pub fn holds_template(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.values().any(holds_template),
        _ => false,
    }
}

/// Where a compiled template's text comes from, to turn its line numbers into positions.
#[derive(Debug, Clone)]
enum Origin {
    /// A template file: its lines are the file's lines.
    File(PathBuf),
    /// A string value in a YAML file: its first character is at `pos` (after the opening
    /// quote when `quoted`); block scalars keep their lines and indentation.
    Inline { pos: SourcePos, quoted: bool },
}

#[derive(Debug, Clone)]
struct Source {
    text: String,
    origin: Origin,
}

/// The compiled templates of one playbook.
#[derive(Debug, Default)]
pub struct TemplateSet {
    tera: tera::Tera,
    sources: HashMap<String, Source>,
    /// Names referenced by any template, so a renderer can skip building costly variables
    /// (like `groups`) nobody reads.
    referenced: BTreeSet<String>,
}

impl TemplateSet {
    /// Registers a template file's text under `name` (its name in the playbook).
    pub(crate) fn add_file(&mut self, name: &str, path: &Path, text: String) {
        self.sources.insert(
            name.to_string(),
            Source {
                text,
                origin: Origin::File(path.to_path_buf()),
            },
        );
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    /// Registers a templated string value found at `pos` in `file_text`; returns its name.
    pub(crate) fn add_inline(&mut self, text: &str, pos: &SourcePos, file_text: &str) -> String {
        // List items share their list's position: the count keeps names apart.
        let name = format!("{pos} #{}", self.sources.len());
        let quoted =
            char_at(file_text, pos.line, pos.column).is_some_and(|c| c == '"' || c == '\'');
        self.sources.insert(
            name.clone(),
            Source {
                text: text.to_string(),
                origin: Origin::Inline {
                    pos: pos.clone(),
                    quoted,
                },
            },
        );
        name
    }

    /// Compiles everything registered; a syntax error names the template's file and line.
    pub(crate) fn compile(&mut self) -> Result<(), InputError> {
        let mut tera = tera::Tera::default();
        // Config files, not HTML: never escape.
        tera.autoescape_on(Vec::new());
        let all: Vec<(&str, &str)> = self
            .sources
            .iter()
            .map(|(name, source)| (name.as_str(), source.text.as_str()))
            .collect();
        if let Err(err) = tera.add_raw_templates(all) {
            return Err(self.compile_error(&err));
        }
        self.referenced = self
            .sources
            .values()
            .flat_map(|s| identifiers(&s.text).into_iter().map(|(name, _, _)| name))
            .collect();
        self.tera = tera;
        Ok(())
    }

    /// Finds which template failed to compile and where (tera reports a whole batch).
    fn compile_error(&self, batch_error: &tera::Error) -> InputError {
        let mut names: Vec<&String> = self.sources.keys().collect();
        names.sort();
        for name in names {
            let source = &self.sources[name];
            let mut alone = tera::Tera::default();
            if let Err(err) = alone.add_raw_template(name, &source.text) {
                if matches!(err.kind, tera::ErrorKind::MissingParent { .. }) {
                    continue;
                }
                let detail = innermost(&err);
                let (line, column) = parse_arrow_position(&detail).unwrap_or((0, 0));
                let message = detail
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("= "))
                    .map(str::to_string)
                    .unwrap_or_else(|| one_line(&detail));
                return InputError::new(format!("template syntax error: {message}"))
                    .at(self.position(name, line, column))
                    .hint("see the tera template syntax: {{ var }}, {% if %}...{% endif %}, {% for %}...{% endfor %}");
            }
        }
        InputError::new(format!("templates: {}", one_line(&innermost(batch_error))))
            .hint("a template extends or includes one that is not loaded")
    }

    /// Whether any template mentions `name` (as a variable, filter or anything else).
    pub fn references(&self, name: &str) -> bool {
        self.referenced.contains(name)
    }

    /// Renders the template `name`; errors name the template position and `host`.
    pub fn render(
        &self,
        name: &str,
        context: &tera::Context,
        host: &str,
    ) -> Result<String, InputError> {
        self.tera
            .render(name, context)
            .map_err(|err| self.render_error(name, &err, host))
    }

    fn render_error(&self, name: &str, err: &tera::Error, host: &str) -> InputError {
        let detail = one_line(&innermost(err));
        // Tera names the template that failed, which may be an included one.
        let failing = rendering_template(&detail)
            .filter(|n| self.sources.contains_key(*n))
            .unwrap_or(name)
            .to_string();
        if let Some(var) = undefined_variable(&detail) {
            let root = var.split(['.', '[']).next().unwrap_or(var).to_string();
            let (line, column) = self
                .sources
                .get(&failing)
                .and_then(|s| find_identifier(&s.text, &root))
                .unwrap_or((0, 0));
            return InputError::new(format!("variable `{var}` is not defined"))
                .at(self.position(&failing, line, column))
                .host(host)
                .hint(format!(
                    "define `{root}` in the inventory (host or group vars), in the play's vars or defaults, or with -e {root}=..."
                ));
        }
        InputError::new(format!("template error: {detail}"))
            .at(self.position(&failing, 0, 0))
            .host(host)
    }

    /// The file position of (`line`, `column`) of template `name` (0: unknown).
    fn position(&self, name: &str, line: usize, column: usize) -> SourcePos {
        match self.sources.get(name).map(|s| &s.origin) {
            Some(Origin::File(path)) => SourcePos::new(path, line, column),
            Some(Origin::Inline { pos, quoted }) => {
                if line == 0 {
                    return pos.clone();
                }
                let shift = usize::from(*quoted && line == 1);
                let column = if column == 0 {
                    pos.column
                } else {
                    pos.column + column - 1 + shift
                };
                SourcePos::new(&pos.file, pos.line + line - 1, column)
            }
            None => SourcePos::new(Path::new(name), line, column),
        }
    }
}

/// Renders a template that is not part of a playbook (a templated inventory or `-e` value);
/// `label` names it in errors.
pub fn render_one_off(
    text: &str,
    context: &tera::Context,
    label: &str,
    host: &str,
) -> Result<String, InputError> {
    tera::Tera::one_off(text, context, false).map_err(|err| {
        let detail = one_line(&innermost(&err));
        let message = match undefined_variable(&detail) {
            Some(var) => format!("{label}: variable `{var}` is not defined"),
            None => format!("{label}: template error: {detail}"),
        };
        InputError::new(message).host(host)
    })
}

/// The deepest message of an error chain (tera wraps the useful one).
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Variable `x.y` not found in context while rendering 'name'` -> `x.y`.
fn undefined_variable(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("Variable `")?;
    let (var, tail) = rest.split_once('`')?;
    tail.starts_with(" not found in context").then_some(var)
}

/// `... while rendering 'name'` -> `name`.
fn rendering_template(detail: &str) -> Option<&str> {
    let (_, rest) = detail.split_once("while rendering '")?;
    rest.split_once('\'').map(|(name, _)| name)
}

/// The ` --> LINE:COL` of a tera syntax error.
fn parse_arrow_position(detail: &str) -> Option<(usize, usize)> {
    let (_, rest) = detail.split_once("--> ")?;
    let token = rest.split_whitespace().next()?;
    let (line, column) = token.split_once(':')?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

fn char_at(text: &str, line: usize, column: usize) -> Option<char> {
    text.lines()
        .nth(line.checked_sub(1)?)?
        .chars()
        .nth(column.checked_sub(1)?)
}

/// Identifiers inside `{{ }}` and `{% %}` tags with their 1-based line and column: a
/// superset of the variables a template reads (filter names and keywords come along).
/// Attribute names (`.x`) and string literals are skipped.
pub(crate) fn identifiers(text: &str) -> Vec<(String, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let (mut line, mut column) = (1, 1);
    let mut i = 0;
    let mut in_tag = false;
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or('\0');
        let mut step = 1;
        if !in_tag {
            if c == '{' && (next == '{' || next == '%') {
                in_tag = true;
                step = 2;
            } else if c == '{' && next == '#' {
                // Skip a comment entirely.
                let mut j = i + 2;
                while j + 1 < chars.len() && !(chars[j] == '#' && chars[j + 1] == '}') {
                    j += 1;
                }
                step = (j + 2).min(chars.len()) - i;
            }
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            quote = Some(c);
        } else if (c == '}' || c == '%') && next == '}' {
            in_tag = false;
            step = 2;
        } else if (c.is_ascii_alphabetic() || c == '_')
            && !(previous.is_ascii_alphanumeric() || previous == '_' || previous == '.')
        {
            let start = i;
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            found.push((chars[start..j].iter().collect(), line, column));
            step = j - i;
        }
        for k in 0..step {
            let ch = chars[i + k];
            if ch == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
            previous = ch;
        }
        i += step;
    }
    found
}

/// The first place `name` is used inside a tag of `text`.
fn find_identifier(text: &str, name: &str) -> Option<(usize, usize)> {
    identifiers(text)
        .into_iter()
        .find(|(found, _, _)| found == name)
        .map(|(_, line, column)| (line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_skip_text_strings_attributes_and_comments() {
        let text =
            "relay {{ a }}\n{# b #}{% for x in list.c %}{{ x | upper }}{{ 'd' }}{% endfor %}";
        let names: Vec<String> = identifiers(text).into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(
            names,
            ["a", "for", "x", "in", "list", "x", "upper", "endfor"]
        );
        assert_eq!(find_identifier(text, "list"), Some((2, 20)));
        assert_eq!(find_identifier(text, "relay"), None);
    }

    #[test]
    fn tera_messages_are_understood() {
        let detail = "Variable `a.b` not found in context while rendering 'main.cf.j2'";
        assert_eq!(undefined_variable(detail), Some("a.b"));
        assert_eq!(rendering_template(detail), Some("main.cf.j2"));
        assert_eq!(parse_arrow_position(" --> 3:14\n  |"), Some((3, 14)));
    }
}
