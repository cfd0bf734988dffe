//! Checks of single values, shared by the loader (values written as they are) and the
//! renderer (values produced by templates). Each returns the value to use or what is wrong.

use crate::model::{MapType, ServiceType};

/// Lookup table types `postmap` builds an indexed file for.
pub const POSTMAP_TYPES: &[&str] = &["hash", "btree", "lmdb", "cdb", "dbm"];
/// Lookup table types read from the source file itself (a change needs a reload).
pub const PLAIN_TABLE_TYPES: &[&str] = &["regexp", "pcre", "cidr", "texthash"];
/// master.cf service types.
pub const MASTER_TYPES: &[&str] = &["inet", "unix", "unix-dgram", "fifo", "pass"];

pub fn param_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "parameter name '{name}' is not a Postfix parameter name (letters, digits and '_')"
        ))
    }
}

/// main.cf and `-o` values live on one line.
pub fn one_line(what: &str, value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r']) {
        Err(format!("{what} contains a line break: {value:?}"))
    } else {
        Ok(())
    }
}

/// private, unpriv, chroot: `y`, `n` or `-` (YAML-ish yes/no/true/false accepted).
pub fn master_flag(field: &str, value: &str) -> Result<String, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" => Ok("y".into()),
        "n" | "no" | "false" => Ok("n".into()),
        "-" => Ok("-".into()),
        _ => Err(format!(
            "master.cf `{field}` must be y, n or -, not '{value}'"
        )),
    }
}

/// wakeup: `-`, or seconds with an optional `?` (wake only when in use).
pub fn master_wakeup(value: &str) -> Result<String, String> {
    let value = value.trim();
    let digits = value.strip_suffix('?').unwrap_or(value);
    if value == "-" || (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "master.cf `wakeup` must be -, a number of seconds or seconds followed by '?', not '{value}'"
        ))
    }
}

/// maxproc: `-` or a number.
pub fn master_maxproc(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "-" || (!value.is_empty() && value.chars().all(|c| c.is_ascii_digit())) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "master.cf `maxproc` must be - or a number, not '{value}'"
        ))
    }
}

pub fn master_type(kind: &str) -> Result<ServiceType, String> {
    ServiceType::parse(kind).ok_or_else(|| {
        format!(
            "master.cf type '{kind}' is not one of {}",
            MASTER_TYPES.join(", ")
        )
    })
}

/// A service name: one word, for inet `[host:]port` (`[::1]:25`, `127.0.0.1:2526`, `smtp`).
pub fn master_service(service: &str) -> Result<(), String> {
    let valid = !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:[]".contains(c));
    if valid {
        Ok(())
    } else {
        // `*` in particular: postconf reads it as a wildcard, rewriting every service.
        Err(format!(
            "master.cf service '{service}' must be one word of letters, digits and . _ - : [ ]"
        ))
    }
}

/// A command name: one word.
pub fn master_command(command: &str) -> Result<(), String> {
    if !command.is_empty() && !command.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!(
            "master.cf command '{command}' must be one word (put arguments in `args`)"
        ))
    }
}

/// An argument is one master.cf word, unless wrapped in `{ }` (Postfix 3.0+ allows spaces there).
pub fn master_arg(arg: &str) -> Result<(), String> {
    let braced = arg.starts_with('{') && arg.ends_with('}');
    if arg.is_empty()
        || arg.contains(['\n', '\r'])
        || (!braced && arg.contains(char::is_whitespace))
    {
        Err(format!(
            "master.cf argument {arg:?} must be one word (or wrapped in {{ }} when it holds spaces)"
        ))
    } else {
        Ok(())
    }
}

/// The `-o` argument for an option: `name=value`, or `{ name = value }` when the value holds
/// spaces (Postfix 3.0+ syntax).
pub fn master_option(name: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("{{ {name} = {value} }}")
    } else {
        format!("{name}={value}")
    }
}

/// postmulti group names.
pub fn instance_group(group: &str) -> Result<(), String> {
    if !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "group '{group}' must be letters, digits, '.', '_' or '-'"
        ))
    }
}

/// A table type for the `type:` of a table.
pub fn table_type(kind: &str) -> Result<MapType, String> {
    if POSTMAP_TYPES.contains(&kind) || PLAIN_TABLE_TYPES.contains(&kind) {
        return Ok(MapType::new(kind));
    }
    let mut message = format!(
        "table type '{kind}' is not one of {}, {}",
        POSTMAP_TYPES.join(", "),
        PLAIN_TABLE_TYPES.join(", ")
    );
    if kind == "inline" {
        message.push_str(" (inline: tables live in main.cf: write them in `main_cf`)");
    }
    Err(message)
}

/// An octal mode such as `0644`, `644` or `0o644`.
pub fn mode(raw: &str) -> Result<u32, String> {
    let digits = raw.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    let parsed = if !digits.is_empty()
        && digits.len() <= 5
        && digits.chars().all(|c| ('0'..='7').contains(&c))
    {
        u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
    } else {
        None
    };
    parsed.ok_or_else(|| format!("mode '{raw}' is not an octal file mode like \"0644\""))
}

/// A managed file's path: absolute, or relative to the instance's config directory; no
/// `..`, normalized (`a//./b` -> `a/b`). Not main.cf or master.cf: templates own those.
pub fn file_path(raw: &str, config_dir: &str) -> Result<String, String> {
    if raw.trim().is_empty() || raw.ends_with('/') {
        return Err(format!("path {raw:?} must name a file"));
    }
    // Leading or trailing blanks would be lost where the host's shell reads lists back (a
    // rollback of "transport " would touch "transport"); control characters (tabs,
    // newlines) break the records facts come back in.
    if raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err(format!(
            "path {raw:?} must not start or end with blanks nor hold control characters \
             (tabs, newlines)"
        ));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("path '{raw}' must not contain '..'")),
            part => parts.push(part),
        }
    }
    let path = if raw.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else {
        format!("{}/{}", config_dir.trim_end_matches('/'), parts.join("/"))
    };
    for owned in ["main.cf", "master.cf"] {
        if path == format!("{config_dir}/{owned}") {
            return Err(format!(
                "path '{raw}' is the instance's {owned}: use `{}_template` or `{}`",
                owned.replace('.', "_"),
                owned.replace('.', "_")
            ));
        }
    }
    Ok(path)
}

/// A file an instance may not manage: one in another instance's config directory (`others`),
/// or in postfleet's own state directory on the host.
pub fn foreign_path(path: &str, others: &[String]) -> Result<(), String> {
    let inside = |dir: &str| path.starts_with(&format!("{}/", dir.trim_end_matches('/')));
    if inside(crate::scripts::STATE_DIR) {
        return Err(format!(
            "path '{path}' is inside postfleet's state directory {}",
            crate::scripts::STATE_DIR
        ));
    }
    match others.iter().find(|dir| inside(dir)) {
        Some(dir) => Err(format!(
            "path '{path}' is inside {dir}, another instance's config directory: declare the \
             file under that instance"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode("0644"), Ok(0o644));
        assert_eq!(mode("600"), Ok(0o600));
        assert_eq!(mode("0o640"), Ok(0o640));
        assert_eq!(mode("02755"), Ok(0o2755));
        assert!(mode("0999").is_err());
        assert!(mode("rw-r--r--").is_err());
        assert!(mode("").is_err());
        assert!(mode("77777").is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(
            file_path("transport", "/etc/postfix").unwrap(),
            "/etc/postfix/transport"
        );
        assert_eq!(
            file_path("./maps//x", "/etc/postfix-nl").unwrap(),
            "/etc/postfix-nl/maps/x"
        );
        assert_eq!(
            file_path("/etc/mail/a", "/etc/postfix").unwrap(),
            "/etc/mail/a"
        );
        assert!(file_path("../shadow", "/etc/postfix")
            .unwrap_err()
            .contains("'..'"));
        assert!(file_path("/etc/postfix/../x", "/etc/postfix").is_err());
        assert!(file_path("", "/etc/postfix").is_err());
        assert!(file_path("dir/", "/etc/postfix").is_err());
        assert!(file_path("main.cf", "/etc/postfix")
            .unwrap_err()
            .contains("main_cf_template"));
        assert!(file_path("/etc/postfix-a/master.cf", "/etc/postfix-a").is_err());
        for bad in [
            "transport ",
            " transport",
            "trans\tport",
            "a\nb",
            "a\0b",
            "x\r",
        ] {
            assert!(file_path(bad, "/etc/postfix").is_err(), "{bad:?}");
        }
        assert!(file_path("my maps/transport", "/etc/postfix").is_ok());
    }

    #[test]
    fn files_of_other_instances_and_of_postfleet_are_foreign() {
        let others = vec!["/etc/postfix".to_string(), "/etc/postfix-b".to_string()];
        assert!(foreign_path("/etc/postfix-a/transport", &others).is_ok());
        assert!(foreign_path("/etc/postfix-bb/x", &others).is_ok());
        assert!(foreign_path("/etc/postfix/transport", &others)
            .unwrap_err()
            .contains("another instance's config directory"));
        assert!(foreign_path("/etc/postfix-b/maps/x", &others).is_err());
        assert!(foreign_path("/var/lib/postfleet/pending/x", &[])
            .unwrap_err()
            .contains("state directory"));
    }

    #[test]
    fn master_fields() {
        assert_eq!(master_flag("private", "no").unwrap(), "n");
        assert_eq!(master_flag("chroot", "Y").unwrap(), "y");
        assert!(master_flag("unpriv", "maybe").is_err());
        assert_eq!(master_wakeup("60?").unwrap(), "60?");
        assert!(master_wakeup("soon").is_err());
        assert_eq!(master_maxproc("100").unwrap(), "100");
        assert!(master_maxproc("-1").is_err());
        assert!(master_type("tcp").is_err());
        assert!(master_service("127.0.0.1:2526").is_ok());
        assert!(master_service("[::1]:25").is_ok());
        assert!(master_service("a b").is_err());
        assert!(master_service("*").is_err());
        assert!(master_service("smtp*").is_err());
        assert!(master_arg("{ -o x = a b }").is_ok());
        assert!(master_arg("a b").is_err());
        assert_eq!(master_option("a", "b"), "a=b");
        assert_eq!(master_option("a", "b, c"), "{ a = b, c }");
    }
}
