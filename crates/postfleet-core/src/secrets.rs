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

/// One changed parameter as `name: old -> new`, values redacted for secret-looking names.
/// `None` stands for "not set" (shown as `(unset)`).
pub fn param_change(name: &str, old: Option<&str>, new: Option<&str>) -> String {
    let show = |value: Option<&str>| match value {
        None => "(unset)".to_string(),
        Some(value) => redact(name, value).to_string(),
    };
    format!("{name}: {} -> {}", show(old), show(new))
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
    fn param_change_hides_secret_values_only() {
        assert_eq!(
            param_change("relayhost", Some("[old]:25"), Some("[new]:25")),
            "relayhost: [old]:25 -> [new]:25"
        );
        assert_eq!(
            param_change("smtp_sasl_password_maps", None, Some("static:user:hunter2")),
            "smtp_sasl_password_maps: (unset) -> (hidden)"
        );
        assert_eq!(redact("api_token", "abc"), "(hidden)");
        assert_eq!(redact("myhostname", "mx1"), "mx1");
    }
}
