//! master.cf entries as Postfix reads them, and edits with `postconf -M` / `-MX` semantics.

use crate::model::{MasterEntry, MasterService};

/// One entry of master.cf: its words (continuation lines included) and where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub words: Vec<String>,
    first_line: usize,
    line_count: usize,
}

impl Entry {
    pub fn service(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.words.get(1).map(String::as_str).unwrap_or("")
    }
    pub fn key(&self) -> String {
        format!("{}/{}", self.service(), self.kind())
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// Splits master.cf words; `{ ... }` groups (Postfix 3.0 syntax) stay one word.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '{' {
            let mut depth = 0;
            for c in chars.by_ref() {
                word.push(c);
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

pub fn entries(content: &str) -> Vec<Entry> {
    let lines: Vec<&str> = content.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if is_blank_or_comment(lines[i]) || lines[i].starts_with(char::is_whitespace) {
            i += 1;
            continue;
        }
        let mut text = lines[i].to_string();
        let mut count = 1;
        while i + count < lines.len() {
            let next = lines[i + count];
            if next.starts_with(char::is_whitespace) && !is_blank_or_comment(next) {
                text.push(' ');
                text.push_str(next.trim());
                count += 1;
            } else if next.trim_start().starts_with('#') && next.starts_with(char::is_whitespace) {
                // An indented comment inside an entry's continuation is skipped by Postfix.
                count += 1;
            } else {
                break;
            }
        }
        out.push(Entry {
            words: words(&text),
            first_line: i,
            line_count: count,
        });
        i += count;
    }
    out
}

/// The words an entry has when written from the playbook's fields.
pub fn desired_words(service: &MasterService, entry: &MasterEntry) -> Vec<String> {
    let mut w = vec![
        service.service.clone(),
        service.kind.to_string(),
        entry.private.clone(),
        entry.unpriv.clone(),
        entry.chroot.clone(),
        entry.wakeup.clone(),
        entry.maxproc.clone(),
        entry.command.clone(),
    ];
    w.extend(entry.args.iter().cloned());
    w
}

/// The entry as `postconf -M` writes it into master.cf, so that the file postfleet edits reads
/// as if postconf had: the eight fields at their columns (at least one space apart), then
/// the command's arguments, folded before column 80 onto lines indented by four spaces;
/// each option with a value (`-o name=value`) on a line of its own, a value holding blanks
/// in `{ }`. Arguments are first brought into postconf's canonical form (`-oname=value` and
/// `-o { name = value }` become `-o name=value`).
pub fn format_entry(words: &[String]) -> String {
    const COLUMNS: [usize; FIELDS] = [0, 11, 17, 25, 33, 41, 49, 57];
    const LIMIT: usize = 80;
    const INDENT: &str = "    ";
    let words = canonical_args(words);
    let mut text = String::new();
    let mut len = 0;
    for (word, column) in words.iter().zip(COLUMNS) {
        if len > 0 {
            loop {
                text.push(' ');
                len += 1;
                if len >= column {
                    break;
                }
            }
        }
        text.push_str(word);
        len += word.len();
    }
    let blank = |w: &str| w.contains([' ', '\t', '\r', '\n']);
    let mut options = true;
    let mut i = COLUMNS.len();
    while i < words.len() {
        let arg = &words[i];
        let mut width = arg.len();
        let mut value = None;
        let mut braces = false;
        if options {
            if !arg.starts_with('-') || arg == "--" {
                // The first word after the options is never braced (postconf's own rule).
                options = false;
            } else if takes_value(arg) && i + 1 < words.len() {
                let v = &words[i + 1];
                len = LIMIT; // a line of its own
                width += v.len() + 3;
                braces = blank(v);
                if braces {
                    width += 2;
                }
                value = Some(v);
            }
        } else {
            braces = blank(arg);
        }
        if len > INDENT.len() {
            if len + 1 + width < LIMIT {
                text.push(' ');
                len += 1;
            } else {
                text.push('\n');
                text.push_str(INDENT);
                len = INDENT.len();
            }
        }
        let wrap = !options && braces;
        for part in [wrap.then_some("{"), Some(arg.as_str()), wrap.then_some("}")]
            .into_iter()
            .flatten()
        {
            text.push_str(part);
            len += part.len();
        }
        if let Some(v) = value {
            text.push(' ');
            if braces {
                text.push('{');
            }
            text.push_str(v);
            if braces {
                text.push('}');
            }
            i += 1;
            len = LIMIT;
        }
        i += 1;
    }
    text
}

/// An entry's fields before the command's arguments: service, type, private, unpriv, chroot,
/// wakeup, maxproc, command.
const FIELDS: usize = 8;

/// Daemon options that take a value: `-o`.
fn takes_value(option: &str) -> bool {
    option.as_bytes().get(1) == Some(&b'o')
}

/// The arguments as postconf reads them: `-vo` is `-v -o`, `-oname=value` is `-o
/// name=value`, a braced word loses its braces and the blanks inside them, and a braced
/// `-o` value its blanks around `=`.
fn canonical_args(words: &[String]) -> Vec<String> {
    let mut words = words.to_vec();
    let unbrace = |w: &str| -> Option<String> {
        let inner = w.strip_prefix('{')?.strip_suffix('}')?;
        Some(
            inner
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .to_string(),
        )
    };
    let mut i = FIELDS;
    while i < words.len() {
        let arg = words[i].clone();
        if !arg.starts_with('-') || arg == "--" {
            break;
        }
        if let Some(at) = arg.get(2..).and_then(|rest| rest.find('o')) {
            let at = at + 2;
            words.insert(i + 1, format!("-{}", &arg[at..]));
            words[i].truncate(at);
        }
        if !takes_value(&words[i]) {
            i += 1;
            continue;
        }
        if words[i].len() > 2 {
            let value = words[i][2..].to_string();
            words[i].truncate(2);
            words.insert(i + 1, value);
        }
        if i + 1 < words.len() {
            i += 1;
            if let Some(inner) = unbrace(&words[i]) {
                words[i] = match inner.split_once('=') {
                    Some((name, value)) => format!(
                        "{}={}",
                        name.trim_matches(|c: char| c.is_ascii_whitespace()),
                        value.trim_matches(|c: char| c.is_ascii_whitespace())
                    ),
                    None => inner,
                };
            }
        }
        i += 1;
    }
    for word in words.iter_mut().skip(i) {
        if let Some(inner) = unbrace(word) {
            *word = inner;
        }
    }
    words
}

/// Whether applying this service (entry or removal) would change the text.
pub fn differs(content: &str, service: &MasterService) -> bool {
    let key = service.key();
    let current: Vec<Entry> = entries(content)
        .into_iter()
        .filter(|e| e.key() == key)
        .collect();
    match &service.entry {
        None => !current.is_empty(),
        Some(entry) => !(current.len() == 1 && current[0].words == desired_words(service, entry)),
    }
}

/// Applies entries like `postconf -M` (replace in place or append) and `postconf -MX`.
pub fn edit(content: &str, services: &[MasterService]) -> String {
    let mut text = content.to_string();
    for service in services {
        if !differs(&text, service) {
            continue;
        }
        let key = service.key();
        let lines: Vec<&str> = text.lines().collect();
        let matching: Vec<Entry> = entries(&text)
            .into_iter()
            .filter(|e| e.key() == key)
            .collect();
        let replacement = service
            .entry
            .as_ref()
            .map(|e| format_entry(&desired_words(service, e)));
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if let Some(e) = matching.iter().find(|e| e.first_line == i) {
                if e.first_line == matching[0].first_line {
                    if let Some(r) = &replacement {
                        out.push(r.clone());
                    }
                }
                i += e.line_count;
                continue;
            }
            out.push(lines[i].to_string());
            i += 1;
        }
        if matching.is_empty() {
            if let Some(r) = &replacement {
                out.push(r.clone());
            }
        }
        text = out.join("\n");
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# service type  private unpriv  chroot  wakeup  maxproc command\nsmtp      inet  n       -       y       -       -       smtpd\n#submission inet n       -       y       -       -       smtpd\n#  -o syslog_name=postfix/submission\npickup    unix  n       -       y       60      1       pickup\nrelay     unix  -       -       y       -       -       smtp\n        -o syslog_name=postfix/$service_name\n";

    fn svc(service: &str, kind: &str, command: Option<&str>, args: &[&str]) -> MasterService {
        MasterService {
            service: service.into(),
            kind: crate::model::ServiceType::parse(kind).unwrap(),
            entry: command.map(|c| MasterEntry {
                private: "-".into(),
                unpriv: "-".into(),
                chroot: "y".into(),
                wakeup: "-".into(),
                maxproc: "-".into(),
                command: c.into(),
                args: args.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn parses_entries_with_continuations_and_skips_comments() {
        let e = entries(SAMPLE);
        let keys: Vec<String> = e.iter().map(Entry::key).collect();
        assert_eq!(keys, ["smtp/inet", "pickup/unix", "relay/unix"]);
        assert_eq!(
            e[2].words.last().unwrap(),
            "syslog_name=postfix/$service_name"
        );
    }

    #[test]
    fn equal_entry_is_no_change() {
        let relay = svc(
            "relay",
            "unix",
            Some("smtp"),
            &["-o", "syslog_name=postfix/$service_name"],
        );
        assert!(!differs(SAMPLE, &relay));
        assert_eq!(edit(SAMPLE, &[relay]), SAMPLE);
    }

    /// What `postconf -M` (Postfix 3.7, Debian 12) wrote for these entries.
    #[test]
    fn entries_are_written_as_postconf_writes_them() {
        let words = |line: &str| -> Vec<String> {
            // split at blanks, keeping `{ ... }` whole
            let mut out = Vec::new();
            let mut cur = String::new();
            let mut depth = 0;
            for c in line.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ' ' if depth == 0 => {
                        if !cur.is_empty() {
                            out.push(std::mem::take(&mut cur));
                        }
                        continue;
                    }
                    _ => {}
                }
                cur.push(c);
            }
            if !cur.is_empty() {
                out.push(cur);
            }
            out
        };
        let cases = [
            (
                "slow unix - - y - - smtp -o syslog_name=postfix/slow",
                "slow       unix  -       -       y       -       -       smtp\n    -o syslog_name=postfix/slow",
            ),
            (
                "a inet n - - - 100 smtpd -v -o { smtpd_client_restrictions = permit_mynetworks, reject } -oa=b -vo c=d -- x {y z} w",
                "a          inet  n       -       -       -       100     smtpd -v\n    -o {smtpd_client_restrictions=permit_mynetworks, reject}\n    -o a=b\n    -v\n    -o c=d\n    -- x {y z} w",
            ),
            (
                "averyveryverylongservicename unix - - - - - pipe flags=DRhu user=vmail argv=/usr/bin/maildrop -d ${recipient} extra1 extra2 extra3 extra4 extra5",
                "averyveryverylongservicename unix - - -  -       -       pipe flags=DRhu\n    user=vmail argv=/usr/bin/maildrop -d ${recipient} extra1 extra2 extra3\n    extra4 extra5",
            ),
            ("p unix - - n - - pipe {a b} c", "p          unix  -       -       n       -       -       pipe a b c"),
        ];
        for (entry, written) in cases {
            assert_eq!(format_entry(&words(entry)), written, "{entry}");
        }
    }

    #[test]
    fn appends_replaces_and_removes() {
        let slow = svc(
            "slow",
            "unix",
            Some("smtp"),
            &["-o", "syslog_name=postfix/slow"],
        );
        let out = edit(SAMPLE, std::slice::from_ref(&slow));
        assert!(out.ends_with("slow       unix  -       -       y       -       -       smtp\n    -o syslog_name=postfix/slow\n"));
        assert!(!differs(&out, &slow));

        let relay = svc("relay", "unix", Some("smtp"), &[]);
        let out = edit(SAMPLE, std::slice::from_ref(&relay));
        assert!(!out.contains("syslog_name=postfix/$service_name"));
        assert!(!differs(&out, &relay));

        let gone = svc("smtp", "inet", None, &[]);
        let out = edit(SAMPLE, std::slice::from_ref(&gone));
        assert!(!out.contains("smtpd\n#submission") && !out.starts_with("smtp "));
        assert!(entries(&out).iter().all(|e| e.key() != "smtp/inet"));
        assert!(!differs(&out, &gone));
    }

    #[test]
    fn braced_words_stay_whole() {
        let e = entries("x unix - - n - - smtp\n  -o { smtp_helo_name = a b }\n");
        assert_eq!(e[0].words.last().unwrap(), "{ smtp_helo_name = a b }");
    }
}
