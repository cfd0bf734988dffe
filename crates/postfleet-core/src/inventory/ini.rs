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
//! the host or range (with `:PORT`, which sets `ansible_port`), then `NAME=VALUE` words. Every
//! value is typed as a Python literal (see [`literal`]). A group named in `[GROUP:children]` or
//! given `[GROUP:vars]` must be declared by `[GROUP]` or `[GROUP:children]` in the same file
//! (or by an earlier source).

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use super::build::{check_var_name, Builder, GroupId, VarDef};
use super::{literal, ranges};
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
                if c.is_whitespace() {
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
        check_var_name(name, &at.pos(0))?;
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
        let mut defs = Vec::new();
        if let Some((port, port_offset)) = port {
            defs.push(VarDef {
                name: "ansible_port".into(),
                value: port,
                pos: at.pos(port_offset),
            });
        }
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
            check_var_name(name, &at.pos(word.start))?;
            defs.push(VarDef {
                name: name.to_string(),
                value: literal::value(&word.text[eq + 1..]),
                pos: at.pos(word.offset_at(eq + 1)),
            });
        }
        for name in names {
            let host = self.builder.host(group, &name, &pattern_at)?;
            for def in &defs {
                self.builder.host_var(host, def.clone());
            }
        }
        Ok(())
    }
}

/// Host names, and the port they get with where it is written.
type Expanded = (Vec<String>, Option<(Value, usize)>);

/// The hosts a pattern stands for, and the port it gives them (its value and where it is),
/// as Ansible's `_expand_hostpattern`: `host:PORT` or `[host]:PORT` splits off a port when
/// what is left is a host name, an IPv4 or an IPv6 address (ranges allowed); else the whole
/// word is the name.
fn expand_pattern(word: &Word, at: &Line) -> Result<Expanded, InputError> {
    let text = word.text.as_str();
    let (host, port) = match parse_address(text) {
        Some((host, port)) => (host, port),
        None => (text, None),
    };
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
    let port = port.map(|(digits, index)| {
        let value = match digits.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(digits.to_string()),
        };
        (value, word.offset_at(index))
    });
    Ok((names, port))
}

/// Ansible's `parse_address(address, allow_ranges=True)`: the host and the port (its digits
/// and their byte index), or None when the host is not a host name or address.
fn parse_address(address: &str) -> Option<(&str, Option<(&str, usize)>)> {
    let mut host = address;
    let mut base = 0;
    let mut port = None;
    // `[anything]:PORT`
    if let (Some(inner), Some(close)) = (address.strip_prefix('['), address.rfind(']')) {
        if let Some(digits) = address[close + 1..].strip_prefix(':') {
            if close > 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                host = &inner[..close - 1];
                base = 1;
                port = Some((digits, close + 2));
            }
        }
    }
    // `HOST:PORT`, HOST without ':' outside brackets
    if let Some(colon) = host_port_split(host) {
        port = Some((&host[colon + 1..], base + colon + 1));
        host = &host[..colon];
    }
    (is_ipv4(host) || is_ipv6(host) || is_hostname(host)).then_some((host, port))
}

/// Where `text` splits as `HOST:DIGITS` (HOST of non-`:[]` characters and complete `[...]`).
fn host_port_split(text: &str) -> Option<usize> {
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'[' => i += text[i..].find(']')? + 1,
            b']' => return None,
            b':' => {
                let digits = &text[i + 1..];
                return (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then_some(i);
            }
            _ => i += 1,
        }
    }
    None
}

/// A bracketed range of `text` at byte `i` (`[1:3]`, `[a:c]`, `[01:10:2]`): its end, when
/// `bounds` accepts its start and end.
fn range_end(text: &str, i: usize, bounds: impl Fn(&str, &str) -> bool) -> Option<usize> {
    let close = i + text[i..].find(']')?;
    let ok = match text[i + 1..close].split(':').collect::<Vec<_>>().as_slice() {
        [a, b] => bounds(a, b),
        [a, b, step] => bounds(a, b) && is_digits(step),
        _ => false,
    };
    ok.then_some(close + 1)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Numbers, or one letter each (Ansible's alphanumeric range).
fn letters_or_numbers(a: &str, b: &str) -> bool {
    let letter = |s: &str| s.len() == 1 && s.bytes().all(|c| c.is_ascii_alphabetic());
    (is_digits(a) && is_digits(b)) || (letter(a) && letter(b))
}

fn numbers(a: &str, b: &str) -> bool {
    is_digits(a) && is_digits(b)
}

fn hex_numbers(a: &str, b: &str) -> bool {
    is_hex(a) && is_hex(b)
}

/// A host name: dot-separated labels of word characters and `-` (not at either end, `_` not
/// at the end), any of them a range.
fn is_hostname(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|label| {
            let bytes = label.as_bytes();
            let mut i = 0;
            let mut last = None;
            while i < bytes.len() {
                if bytes[i] == b'[' {
                    match range_end(label, i, letters_or_numbers) {
                        Some(end) => {
                            i = end;
                            last = Some(']');
                        }
                        None => return false,
                    }
                    continue;
                }
                let Some(c) = label[i..].chars().next() else {
                    return false;
                };
                let word = c.is_alphanumeric() || c == '_';
                if !(word || (c == '-' && last.is_some())) {
                    return false;
                }
                last = Some(c);
                i += c.len_utf8();
            }
            last.is_some_and(|c| c != '-' && c != '_')
        })
}

/// A dotted IPv4 address, any part a numeric range.
fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            if part.starts_with('[') {
                return range_end(part, 0, numbers) == Some(part.len());
            }
            is_digits(part) && part.len() <= 3 && part.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// An IPv6 address (`::` at most once, groups of 1 to 4 hex digits, an IPv4 tail allowed),
/// any group a hexadecimal range.
fn is_ipv6(text: &str) -> bool {
    // Ranges become a plain group first: their `:` would split them.
    let mut plain = String::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c == '[' {
            let Some(end) = range_end(text, i, hex_numbers) else {
                return false;
            };
            plain.push('0');
            i = end;
        } else {
            plain.push(c);
            i += c.len_utf8();
        }
    }
    // An IPv4 tail (`::ffff:192.0.2.3`) stands for two groups.
    if let Some((head, last)) = plain.rsplit_once(':') {
        if last.contains('.') {
            if !is_ipv4(last) {
                return false;
            }
            plain = format!("{head}:0:0");
        }
    }
    let groups = |s: &str| -> Option<usize> {
        if s.is_empty() {
            return Some(0);
        }
        let parts: Vec<&str> = s.split(':').collect();
        parts
            .iter()
            .all(|g| g.len() <= 4 && is_hex(g))
            .then_some(parts.len())
    };
    match plain.split_once("::") {
        Some((left, right)) => {
            !right.contains("::")
                && matches!((groups(left), groups(right)), (Some(l), Some(r)) if l + r <= 7)
        }
        None => groups(&plain) == Some(8),
    }
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

    #[test]
    fn addresses_and_ports_as_ansible_splits_them() {
        fn split(a: &str) -> Option<(&str, Option<&str>)> {
            parse_address(a).map(|(h, p)| (h, p.map(|p| p.0)))
        }
        assert_eq!(split("mx1"), Some(("mx1", None)));
        assert_eq!(
            split("mx1.example.org:2222"),
            Some(("mx1.example.org", Some("2222")))
        );
        assert_eq!(split("10.0.0.1:22"), Some(("10.0.0.1", Some("22"))));
        assert_eq!(split("[::1]:2222"), Some(("::1", Some("2222"))));
        assert_eq!(split("fe80::1"), Some(("fe80::1", None)));
        assert_eq!(split("2001:db8::10"), Some(("2001:db8::10", None)));
        assert_eq!(split("::ffff:192.0.2.3"), Some(("::ffff:192.0.2.3", None)));
        assert_eq!(split("1:2:3:4:5:6:7:8"), Some(("1:2:3:4:5:6:7:8", None)));
        assert_eq!(split("mx[01:20]:2222"), Some(("mx[01:20]", Some("2222"))));
        assert_eq!(split("db-[a:f].lab"), Some(("db-[a:f].lab", None)));
        assert_eq!(split("10.0.0.[1:9]"), Some(("10.0.0.[1:9]", None)));
        assert_eq!(split("fe80::[a:f]"), Some(("fe80::[a:f]", None)));
        assert_eq!(split("web_1"), Some(("web_1", None)));
        // not a host name: the word stays whole
        assert_eq!(split("mx1:"), None);
        assert_eq!(split("bad-:22"), None);
        assert_eq!(split("a@b"), None);
        assert_eq!(split("1:2:3:4:5:6:7:8:9"), None);
        assert_eq!(split("1::2::3"), None);
    }
}
