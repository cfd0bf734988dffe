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

/// The entry as one master.cf line group: fields on the first line, each `-o` option on
/// its own continuation line (as Postfix's own master.cf writes them).
pub fn format_entry(words: &[String]) -> String {
    let head = words.iter().take(8).cloned().collect::<Vec<_>>();
    let mut text = format!(
        "{:<10} {:<5} {:<7} {:<7} {:<7} {:<7} {:<7} {}",
        head.first().map(String::as_str).unwrap_or(""),
        head.get(1).map(String::as_str).unwrap_or(""),
        head.get(2).map(String::as_str).unwrap_or(""),
        head.get(3).map(String::as_str).unwrap_or(""),
        head.get(4).map(String::as_str).unwrap_or(""),
        head.get(5).map(String::as_str).unwrap_or(""),
        head.get(6).map(String::as_str).unwrap_or(""),
        head.get(7).map(String::as_str).unwrap_or(""),
    );
    let args = &words[words.len().min(8)..];
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-o" && i + 1 < args.len() {
            text.push_str(&format!("\n  -o {}", args[i + 1]));
            i += 2;
        } else {
            text.push_str(&format!("\n  {}", args[i]));
            i += 1;
        }
    }
    text
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

    #[test]
    fn appends_replaces_and_removes() {
        let slow = svc(
            "slow",
            "unix",
            Some("smtp"),
            &["-o", "syslog_name=postfix/slow"],
        );
        let out = edit(SAMPLE, std::slice::from_ref(&slow));
        assert!(out.ends_with("slow       unix  -       -       y       -       -       smtp\n  -o syslog_name=postfix/slow\n"));
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
