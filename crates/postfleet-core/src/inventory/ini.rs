//! The INI inventory, as Ansible's ini plugin reads it:
//!
//! ```ini
//! bastion                      # before any section: ungrouped
//! [mx]
//! mx[01:03].example.org relay=smtp.example.org
//! mx04.example.org:2222 ansible_host=10.0.0.4
//! [mx:vars]
//! level = 2
//! [eu:children]
//! mx
//! ```
//!
//! Lines are stripped; `#` and `;` start comment lines. A section is `[GROUP]` (host lines),
//! `[GROUP:children]` (group names) or `[GROUP:vars]` (`NAME=VALUE`, the value the rest of
//! the line). A host line is split like a POSIX shell (quotes removed, `#` starts a comment):
//! the host or range (with `:PORT`, see [`address`]), then `NAME=VALUE` words. Every
//! value is typed as a Python literal (see [`literal`]). A group named in `[GROUP:children]` or
//! given `[GROUP:vars]` must be declared by `[GROUP]` or `[GROUP:children]` in the same file
//! (or by an earlier source).

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::build::{Builder, GroupId, VarDef};
use super::{address, literal, ranges, yaml};
use crate::error::{InputError, SourcePos};

const SECTION_HINT: &str =
    "a section is [GROUP] (host lines), [GROUP:children] (group names) or [GROUP:vars] (NAME=VALUE lines), with no spaces";
const HOST_LINE_HINT: &str =
    "a host line is HOST[:PORT] [NAME=VALUE ...]; quote a value with spaces: NAME='a b'";

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Hosts,
    Children,
    Vars,
}

/// A section header: `[NAME]` or `[NAME:TYPE]`, with the character offsets of both.
struct Header<'a> {
    name: &'a str,
    name_at: usize,
    kind: Option<(&'a str, usize)>,
}

/// Ansible's section pattern, `^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`, on a stripped line.
fn header(line: &str) -> Option<Header<'_>> {
    let rest = line.strip_prefix('[')?;
    let name_len = rest
        .find(|c: char| c == ':' || c == ']' || c.is_whitespace())
        .unwrap_or(rest.len());
    if name_len == 0 {
        return None;
    }
    let name = &rest[..name_len];
    let mut rest = &rest[name_len..];
    let mut kind = None;
    if let Some(after) = rest.strip_prefix(':') {
        let kind_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if kind_len == 0 {
            return None;
        }
        let kind_at = 1 + name.chars().count() + 1;
        kind = Some((&after[..kind_len], kind_at));
        rest = &after[kind_len..];
    }
    let rest = rest.strip_prefix(']')?.trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    Some(Header {
        name,
        name_at: 1,
        kind,
    })
}

/// Whether `line` (stripped) is a valid section header: format detection asks.
pub(crate) fn is_section_header(line: &str) -> bool {
    header(line).is_some()
}

/// One word of a host line: its text, and the character offset in the line of each of its
/// characters (quotes and escapes removed), and of its start.
#[derive(Debug)]
struct Word {
    text: String,
    offsets: Vec<usize>,
    start: usize,
}

impl Word {
    /// The offset of the character at byte `index` of the text (its end: after the last).
    fn offset_at(&self, index: usize) -> usize {
        let n = self.text[..index].chars().count();
        match self.offsets.get(n) {
            Some(&at) => at,
            None => self.offsets.last().map_or(self.start, |&at| at + 1),
        }
    }
}

/// Splits `line` as Python's `shlex.split(line, comments=True)` does (POSIX mode); an error
/// says what and the character offset where.
fn split_words(line: &str) -> Result<Vec<Word>, (String, usize)> {
    #[derive(PartialEq)]
    enum In {
        Space,
        Word,
        Single,
        Double,
    }
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut state = In::Space;
    let mut word = Word {
        text: String::new(),
        offsets: Vec::new(),
        start: 0,
    };
    let mut quote_at = 0;
    let mut i = 0;
    let push = |word: &mut Word, c: char, at: usize| {
        word.text.push(c);
        word.offsets.push(at);
    };
    while i < chars.len() {
        let c = chars[i];
        match state {
            In::Space | In::Word => {
                // shlex's whitespace: a no-break space or a form feed is part of a word
                if matches!(c, ' ' | '\t' | '\r' | '\n') {
                    if state == In::Word {
                        words.push(std::mem::replace(
                            &mut word,
                            Word {
                                text: String::new(),
                                offsets: Vec::new(),
                                start: 0,
                            },
                        ));
                        state = In::Space;
                    }
                } else if c == '#' {
                    break;
                } else {
                    if state == In::Space {
                        word.start = i;
                        state = In::Word;
                    }
                    match c {
                        '\'' => {
                            state = In::Single;
                            quote_at = i;
                        }
                        '"' => {
                            state = In::Double;
                            quote_at = i;
                        }
                        '\\' => {
                            let Some(&next) = chars.get(i + 1) else {
                                return Err(("a backslash ends the line".into(), i));
                            };
                            push(&mut word, next, i + 1);
                            i += 1;
                        }
                        _ => push(&mut word, c, i),
                    }
                }
            }
            In::Single => {
                if c == '\'' {
                    state = In::Word;
                } else {
                    push(&mut word, c, i);
                }
            }
            In::Double => {
                if c == '"' {
                    state = In::Word;
                } else if c == '\\' {
                    let Some(&next) = chars.get(i + 1) else {
                        return Err(("a backslash ends the line".into(), i));
                    };
                    if next != '"' && next != '\\' {
                        push(&mut word, '\\', i);
                    }
                    push(&mut word, next, i + 1);
                    i += 1;
                } else {
                    push(&mut word, c, i);
                }
            }
        }
        i += 1;
    }
    match state {
        In::Single | In::Double => Err(("this quote is not closed".into(), quote_at)),
        In::Word => {
            words.push(word);
            Ok(words)
        }
        In::Space => Ok(words),
    }
}

/// Reads the INI inventory `text` (the contents of `file`) into `builder`.
pub(crate) fn read(text: &str, file: &Path, builder: &mut Builder) -> Result<(), InputError> {
    // Groups this file declares, wherever: [g:children] and [g:vars] may come before [g].
    let mut declared: HashSet<&str> = HashSet::new();
    for raw in text.lines() {
        if let Some(h) = header(raw.trim()) {
            if matches!(h.kind, None | Some(("hosts" | "children", _))) {
                declared.insert(h.name);
            }
        }
    }
    let mut reader = Reader {
        builder,
        declared,
        group: None,
        state: State::Hosts,
    };
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let lead = raw.chars().count() - raw.trim_start().chars().count();
        let at = Line {
            file,
            number: index + 1,
            lead,
        };
        reader.line(line, &at)?;
    }
    Ok(())
}

/// Where a line is: positions of its characters (offsets in the stripped line).
struct Line<'a> {
    file: &'a Path,
    number: usize,
    /// Characters stripped from the start.
    lead: usize,
}

impl Line<'_> {
    fn pos(&self, offset: usize) -> SourcePos {
        SourcePos::new(self.file, self.number, self.lead + offset + 1)
    }
}

struct Reader<'a, 't> {
    builder: &'a mut Builder,
    declared: HashSet<&'t str>,
    /// The current section's group; None before any section (hosts go to `ungrouped`).
    group: Option<GroupId>,
    state: State,
}

impl Reader<'_, '_> {
    fn is_declared(&self, name: &str) -> bool {
        matches!(name, "all" | "ungrouped")
            || self.declared.contains(name)
            || self.builder.find_group(name).is_some()
    }

    fn line(&mut self, line: &str, at: &Line) -> Result<(), InputError> {
        if let Some(h) = header(line) {
            return self.section(&h, at);
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(InputError::new(format!("invalid section header '{line}'"))
                .at(at.pos(0))
                .hint(SECTION_HINT));
        }
        match self.state {
            State::Hosts => self.host_line(line, at),
            State::Children => self.child_line(line, at),
            State::Vars => self.var_line(line, at),
        }
    }

    fn section(&mut self, h: &Header, at: &Line) -> Result<(), InputError> {
        let state = match h.kind {
            None | Some(("hosts", _)) => State::Hosts,
            Some(("children", _)) => State::Children,
            Some(("vars", _)) => State::Vars,
            Some((kind, kind_at)) => {
                return Err(InputError::new(format!(
                    "section [{}:{kind}] has unknown type '{kind}'",
                    h.name
                ))
                .at(at.pos(kind_at))
                .hint(SECTION_HINT))
            }
        };
        if state == State::Vars && !self.is_declared(h.name) {
            return Err(InputError::new(format!(
                "section [{name}:vars] is not valid for undefined group '{name}'",
                name = h.name
            ))
            .at(at.pos(h.name_at))
            .hint(format!(
                "declare the group in this file: a [{name}] section with its hosts, or [{name}:children] with its groups",
                name = h.name
            )));
        }
        self.group = Some(self.builder.group(h.name, &at.pos(h.name_at))?);
        self.state = state;
        Ok(())
    }

    fn child_line(&mut self, line: &str, at: &Line) -> Result<(), InputError> {
        let parent = self.group.expect("a [g:children] section has its group");
        let name_len = line
            .find(|c: char| c == ':' || c == ']' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_len];
        let rest = line[name_len..].trim_start();
        if name.is_empty() || !(rest.is_empty() || rest.starts_with('#')) {
            let bad_at = if name.is_empty() {
                0
            } else {
                line.chars().count() - rest.chars().count()
            };
            return Err(
                InputError::new(format!("expected a group name, got '{line}'"))
                    .at(at.pos(bad_at))
                    .hint("a [GROUP:children] section lists one group name a line"),
            );
        }
        if !self.is_declared(name) {
            let parent_name = self.builder.group_name(parent);
            return Err(InputError::new(format!(
                "section [{parent_name}:children] includes undefined group '{name}'"
            ))
            .at(at.pos(0))
            .hint(format!(
                "declare the group in this file: a [{name}] section with its hosts, or [{name}:children] with its groups"
            )));
        }
        let child = self.builder.group(name, &at.pos(0))?;
        self.builder.child(parent, child, &at.pos(0))
    }

    fn var_line(&mut self, line: &str, at: &Line) -> Result<(), InputError> {
        let group = self.group.expect("a [g:vars] section has its group");
        let Some((key, value)) = line.split_once('=') else {
            return Err(
                InputError::new(format!("expected NAME=VALUE, got '{line}'"))
                    .at(at.pos(0))
                    .hint("a [GROUP:vars] section has one variable a line: NAME=VALUE (the value is the rest of the line)"),
            );
        };
        let name = key.trim();
        yaml::check_var_name_at(name, &at.pos(0))?;
        let value_at =
            key.chars().count() + 1 + (value.chars().count() - value.trim_start().chars().count());
        self.builder.group_var(
            group,
            VarDef {
                name: name.to_string(),
                value: literal::value(value.trim()),
                pos: at.pos(value_at),
            },
        );
        Ok(())
    }

    fn host_line(&mut self, line: &str, at: &Line) -> Result<(), InputError> {
        let words = split_words(line).map_err(|(why, offset)| {
            InputError::new(format!("cannot split the host line: {why}"))
                .at(at.pos(offset))
                .hint("close the quote, or escape the character with a backslash")
        })?;
        let Some((pattern, vars)) = words.split_first() else {
            return Ok(());
        };
        let group = match self.group {
            Some(g) => g,
            None => {
                let g = self.builder.group("ungrouped", &at.pos(pattern.start))?;
                self.group = Some(g);
                g
            }
        };
        let pattern_at = at.pos(pattern.start);
        let (names, port) = expand_pattern(pattern, at)?;
        let port = port.map(|(value, offset)| VarDef {
            name: "ansible_port".into(),
            value,
            pos: at.pos(offset),
        });
        let mut defs = Vec::new();
        for word in vars {
            let Some(eq) = word.text.find('=') else {
                return Err(InputError::new(format!(
                    "expected NAME=VALUE after the host, got '{}'",
                    word.text
                ))
                .at(at.pos(word.start))
                .hint(HOST_LINE_HINT));
            };
            let name = &word.text[..eq];
            yaml::check_var_name_at(name, &at.pos(word.start))?;
            defs.push(VarDef {
                name: name.to_string(),
                value: literal::value(&word.text[eq + 1..]),
                pos: at.pos(word.offset_at(eq + 1)),
            });
        }
        for name in names {
            let host = match &port {
                Some(port) => self
                    .builder
                    .host_with_port(group, &name, &pattern_at, port)?,
                None => self.builder.host(group, &name, &pattern_at)?,
            };
            for def in &defs {
                self.builder.host_var(host, def.clone());
            }
        }
        Ok(())
    }
}

/// Host names, and the port they get with where it is written.
type Expanded = (Vec<String>, Option<(Value, usize)>);

/// The hosts a pattern stands for, and the port it gives them (its value and where it is):
/// [`address::split`], then the ini plugin's own checks.
fn expand_pattern(word: &Word, at: &Line) -> Result<Expanded, InputError> {
    let text = word.text.as_str();
    let (host, port) = address::split(text);
    if text.trim_end().ends_with(':') && port.is_none() {
        return Err(InputError::new(format!(
            "invalid host pattern '{text}': a ':' at its end is kept for a port"
        ))
        .at(at.pos(word.offset_at(text.trim_end().len() - 1)))
        .hint("write HOST:PORT (mx1:2222), or remove the ':'"));
    }
    let names = ranges::expand(host).map_err(|m| {
        InputError::new(m)
            .at(at.pos(word.start))
            .hint(ranges::RANGE_HINT)
    })?;
    if names.iter().any(|n| n.trim() == "---") {
        return Err(
            InputError::new("'---' is not a host name: this file looks like YAML")
                .at(at.pos(word.start))
                .hint("a YAML inventory starts with `---` or a group (`all:`); an INI one with [GROUP] or host lines"),
        );
    }
    let port = port.map(|(digits, index)| (address::port_value(digits), word.offset_at(index)));
    Ok((names, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn host_lines_split_like_python_shlex() {
        assert_eq!(words("a  b=1"), ["a", "b=1"]);
        assert_eq!(words("h x='a b' y=\"c d\""), ["h", "x=a b", "y=c d"]);
        assert_eq!(words("h x=\"'5'\""), ["h", "x='5'"]);
        assert_eq!(words("h x=1 # comment"), ["h", "x=1"]);
        assert_eq!(words("h x=1#comment"), ["h", "x=1"]);
        assert_eq!(words("h x='a#b'"), ["h", "x=a#b"]);
        assert_eq!(
            words(r#"h x=a\ b y="q\"q\n""#),
            ["h", "x=a b", r#"y=q"q\n"#]
        );
        assert_eq!(words("h x=''"), ["h", "x="]);
        assert_eq!(words("h x=a\u{a0}b\u{c}c"), ["h", "x=a\u{a0}b\u{c}c"]);
        assert_eq!(words("h\tx=1"), ["h", "x=1"]);
        assert_eq!(split_words("h x='open").unwrap_err().1, 4);
        assert_eq!(split_words("h x=\\").unwrap_err().1, 4);
        let w = &split_words("h  x='a b'").unwrap()[1];
        assert_eq!((w.start, w.offset_at(2)), (3, 6));
    }

    #[test]
    fn headers() {
        let h = header("[mx]").unwrap();
        assert_eq!((h.name, h.kind.map(|k| k.0)), ("mx", None));
        let h = header("[mx:vars]   # comment").unwrap();
        assert_eq!((h.name, h.kind), ("mx", Some(("vars", 4))));
        for bad in [
            "[mx vars]",
            "[]",
            "[mx:]",
            "[mx:vars",
            "[mx] x",
            "[:vars]",
            "[mx:va-rs]",
        ] {
            assert!(header(bad).is_none(), "{bad}");
        }
    }
}
