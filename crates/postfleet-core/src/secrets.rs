//! What counts as a secret, and what is shown instead: nothing of a secret's value may reach
//! a diff, a listing or an error message.

/// What replaces a secret value or file content.
pub const HIDDEN: &str = "(hidden)";

/// `value`, or [`HIDDEN`] when `name` looks like it holds a secret (see [`is_secret_name`]).
pub fn redact<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        HIDDEN
    } else {
        value
    }
}

/// Words in a name that mean its value is a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pwd",
    "secret",
    "token",
    "credential",
    "credentials",
    "apikey",
    "privkey",
];

/// Whether a parameter or variable name looks like it holds a secret: one of its words
/// (split at `_`, `-`, `.` and case changes, compared lowercase) is a password/secret/token
/// word, or it names key material (`key`, `private_key`, `dkim_key`) other than the path of a
/// key file (`smtpd_tls_key_file` is a path, not a key). `smtp_sasl_password_maps` counts as
/// secret: `static:` and `inline:` maps carry the password in the value itself.
pub fn is_secret_name(name: &str) -> bool {
    let words = name_words(name);
    if words
        .iter()
        .any(|word| SECRET_WORDS.contains(&word.as_str()))
    {
        return true;
    }
    let names_a_path = matches!(
        words.last().map(String::as_str),
        Some("file" | "path" | "dir" | "directory")
    );
    !names_a_path && words.iter().any(|word| word == "key")
}

/// `smtpTlsKey_file` → `["smtp", "tls", "key", "file"]`.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A variable's value as it may be shown: [`HIDDEN`] under a secret-looking name, and inside
/// maps, every entry under one.
pub fn redact_value(name: &str, value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    if is_secret_name(name) {
        return Value::String(HIDDEN.into());
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_value(k, v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_value("", v)).collect()),
        other => other.clone(),
    }
}

/// What stands for a secret whose value this change replaces.
pub const HIDDEN_CHANGED: &str = "(hidden, changed)";

/// main.cf texts as they may be shown: the value of every parameter with a secret-looking
/// name (continuation lines included) becomes [`HIDDEN`], or [`HIDDEN_CHANGED`] in `new` when
/// it differs from `old`'s. `smtp_sasl_password_maps = static:user:PASSWORD` shows no password.
pub fn redact_main_cf(old: &str, new: &str) -> (String, String) {
    let old_values = main_cf_secrets(old);
    (
        hide_main_cf(old, &|_, _| HIDDEN),
        hide_main_cf(new, &|name, value| {
            if old_values.iter().any(|(n, v)| n == name && v == value) {
                HIDDEN
            } else {
                HIDDEN_CHANGED
            }
        }),
    )
}

/// (name, value) of each secret-looking parameter, continuation lines joined.
fn main_cf_secrets(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_secret = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            if in_secret {
                if let Some(last) = out.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            }
            continue;
        }
        in_secret = false;
        if let Some((name, value)) = main_cf_assignment(line) {
            if is_secret_name(name) {
                out.push((name.to_string(), value.trim().to_string()));
                in_secret = true;
            }
        }
    }
    out
}

fn main_cf_assignment(line: &str) -> Option<(&str, &str)> {
    if line.starts_with('#') {
        return None;
    }
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    (!name.is_empty() && !name.contains(char::is_whitespace)).then_some((name, value))
}

fn hide_main_cf(text: &str, marker: &dyn Fn(&str, &str) -> &'static str) -> String {
    let values = main_cf_secrets(text);
    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if body.starts_with([' ', '\t']) && !body.trim().is_empty() {
            if !in_secret {
                out.push_str(line);
            }
            continue;
        }
        in_secret = false;
        match main_cf_assignment(body) {
            Some((name, _)) if is_secret_name(name) => {
                let value = values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("", |(_, v)| v.as_str());
                out.push_str(&format!("{name} = {}\n", marker(name, value)));
                in_secret = true;
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// master.cf texts as they may be shown: every `name=value` word of a service's arguments
/// (`-o smtp_sasl_password_maps=static:u:p`) whose name looks secret shows its value hidden.
pub fn redact_master_cf(old: &str, new: &str) -> (String, String) {
    let old_words: Vec<&str> = old.split_whitespace().collect();
    (
        hide_master_cf(old, &|_| HIDDEN),
        hide_master_cf(new, &|word| {
            if old_words.contains(&word) {
                HIDDEN
            } else {
                HIDDEN_CHANGED
            }
        }),
    )
}

fn hide_master_cf(text: &str, marker: &dyn Fn(&str) -> &'static str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            match word.split_once('=') {
                Some((name, _)) if is_secret_name(name.trim_start_matches('{')) => {
                    out.push_str(&format!("{name}={}", marker(word)))
                }
                _ => out.push_str(word),
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised() {
        for name in [
            "relay_password",
            "smtp_sasl_password_maps",
            "db_passwd",
            "api_token",
            "apiKey",
            "client_secret",
            "dkim_key",
            "private_key",
            "ssh_key_passphrase",
            "RELAY-PASS",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        for name in [
            "smtpd_tls_key_file",
            "smtp_tls_key_file",
            "smtpd_tls_eckey_file",
            "relayhost",
            "default_destination_rate_delay",
            "monkey_business",
            "keyboard",
            "passenger_count",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn main_cf_secrets_are_hidden_and_a_changed_one_says_so() {
        let old = "relayhost = [mx]:587\nsmtp_sasl_password_maps = static:user:OLDPASS\n";
        let new = "relayhost = [mx]:587\nsmtp_sasl_password_maps = static:user:NEWPASS\n  more:NEWPASS\nmyhostname = a\n";
        let (o, n) = redact_main_cf(old, new);
        assert!(!o.contains("PASS") && !n.contains("PASS"), "{o}\n{n}");
        assert_eq!(
            o,
            "relayhost = [mx]:587\nsmtp_sasl_password_maps = (hidden)\n"
        );
        assert_eq!(
            n,
            "relayhost = [mx]:587\nsmtp_sasl_password_maps = (hidden, changed)\nmyhostname = a\n"
        );
        let (o, n) = redact_main_cf(old, old);
        assert_eq!(o, n, "an unchanged secret shows no change");
    }

    #[test]
    fn master_cf_secret_options_are_hidden() {
        let old = "smtp inet n - y - - smtpd\n  -o smtp_sasl_password_maps=static:u:SECRET1\n";
        let new = "smtp inet n - y - - smtpd\n  -o smtp_sasl_password_maps=static:u:SECRET2\n  -o syslog_name=x\n";
        let (o, n) = redact_master_cf(old, new);
        assert!(!o.contains("SECRET") && !n.contains("SECRET"), "{o}\n{n}");
        assert!(
            n.contains("smtp_sasl_password_maps=(hidden, changed)\n"),
            "{n}"
        );
        assert!(n.contains("-o syslog_name=x"), "{n}");
    }
}
