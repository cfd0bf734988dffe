//! main.cf as Postfix reads it, and edits with `postconf -e` / `-X` semantics.
//!
//! The planner uses this to decide whether a parameter changes and to show the file diff;
//! the remote side applies the same edits with `postconf` itself on a staged copy.

/// One logical `name = value` definition: the lines it spans and its joined value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Definition {
    name: String,
    value: String,
    /// Index of the first line and number of lines (continuations included).
    first_line: usize,
    line_count: usize,
}

fn is_blank_or_comment(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

fn definitions(lines: &[&str]) -> Vec<Definition> {
    let mut defs: Vec<Definition> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_blank_or_comment(line) || line.starts_with(char::is_whitespace) {
            i += 1;
            continue;
        }
        let mut count = 1;
        let mut value_parts: Vec<&str> = Vec::new();
        let (name, first_value) = match line.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (line.trim(), ""),
        };
        if !first_value.is_empty() {
            value_parts.push(first_value);
        }
        while i + count < lines.len() {
            let next = lines[i + count];
            if next.starts_with(char::is_whitespace) && !is_blank_or_comment(next) {
                value_parts.push(next.trim());
                count += 1;
            } else {
                break;
            }
        }
        defs.push(Definition {
            name: name.to_string(),
            value: value_parts.join(" "),
            first_line: i,
            line_count: count,
        });
        i += count;
    }
    defs
}

/// The value a parameter has in this main.cf text (the last definition wins, as in
/// Postfix), or None when it is not set explicitly.
pub fn get(content: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = content.lines().collect();
    definitions(&lines)
        .into_iter()
        .rev()
        .find(|d| d.name == name)
        .map(|d| d.value)
}

/// All explicitly set parameters, in file order (the last definition of a name wins).
pub fn parameters(content: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = content.lines().collect();
    let mut out: Vec<(String, String)> = Vec::new();
    for d in definitions(&lines) {
        if let Some(slot) = out.iter_mut().find(|(n, _)| *n == d.name) {
            slot.1 = d.value;
        } else {
            out.push((d.name, d.value));
        }
    }
    out
}

/// Whether setting `name` to `desired` (None = remove) would change this text.
pub fn differs(content: &str, name: &str, desired: Option<&str>) -> bool {
    let lines: Vec<&str> = content.lines().collect();
    let defs: Vec<Definition> = definitions(&lines)
        .into_iter()
        .filter(|d| d.name == name)
        .collect();
    match desired {
        None => !defs.is_empty(),
        Some(v) => !(defs.len() == 1 && defs[0].value == v.trim()),
    }
}

/// Applies edits like `postconf -e name=value` (Some) and `postconf -X name` (None):
/// the first definition is replaced in place, duplicates are dropped, new names are
/// appended. Edits that change nothing leave the text byte-for-byte as it was.
pub fn edit<'a>(
    content: &str,
    edits: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let mut text = content.to_string();
    for (name, desired) in edits {
        if !differs(&text, name, desired) {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        let defs: Vec<Definition> = definitions(&lines)
            .into_iter()
            .filter(|d| d.name == name)
            .collect();
        let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
        let mut i = 0;
        while i < lines.len() {
            if let Some(def) = defs.iter().find(|d| d.first_line == i) {
                if def.first_line == defs[0].first_line {
                    if let Some(v) = desired {
                        out.push(format!("{name} = {}", v.trim()));
                    }
                }
                i += def.line_count;
                continue;
            }
            out.push(lines[i].to_string());
            i += 1;
        }
        if defs.is_empty() {
            if let Some(v) = desired {
                out.push(format!("{name} = {}", v.trim()));
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

    const SAMPLE: &str = "# comment\nmyhostname = h1.lab.test\nsmtpd_banner = $myhostname ESMTP\n    $mail_name\n\nrelayhost =\n";

    #[test]
    fn reads_values_with_continuations_and_empty_values() {
        assert_eq!(get(SAMPLE, "myhostname").as_deref(), Some("h1.lab.test"));
        assert_eq!(
            get(SAMPLE, "smtpd_banner").as_deref(),
            Some("$myhostname ESMTP $mail_name")
        );
        assert_eq!(get(SAMPLE, "relayhost").as_deref(), Some(""));
        assert_eq!(get(SAMPLE, "nope"), None);
    }

    #[test]
    fn last_definition_wins() {
        let text = "a = 1\nb = 2\na = 3\n";
        assert_eq!(get(text, "a").as_deref(), Some("3"));
        assert_eq!(
            parameters(text),
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn unchanged_edit_keeps_bytes() {
        let text = "relayhost=[gw]:25\n# keep\n";
        assert!(!differs(text, "relayhost", Some("[gw]:25")));
        assert_eq!(edit(text, [("relayhost", Some("[gw]:25"))]), text);
    }

    #[test]
    fn replaces_in_place_including_continuations() {
        let out = edit(SAMPLE, [("smtpd_banner", Some("$myhostname"))]);
        assert_eq!(
            out,
            "# comment\nmyhostname = h1.lab.test\nsmtpd_banner = $myhostname\n\nrelayhost =\n"
        );
    }

    #[test]
    fn appends_new_and_removes_duplicates() {
        let out = edit(
            "a = 1\nb = 2\na = 3\n",
            [("a", Some("9")), ("c", Some("x"))],
        );
        assert_eq!(out, "a = 9\nb = 2\nc = x\n");
    }

    #[test]
    fn removes_with_none() {
        let out = edit(SAMPLE, [("smtpd_banner", None)]);
        assert_eq!(out, "# comment\nmyhostname = h1.lab.test\n\nrelayhost =\n");
        assert!(!differs(&out, "smtpd_banner", None));
    }

    #[test]
    fn file_without_trailing_newline() {
        assert_eq!(edit("a = 1", [("b", Some("2"))]), "a = 1\nb = 2\n");
    }
}
