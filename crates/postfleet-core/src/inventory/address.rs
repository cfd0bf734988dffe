//! Host keys of inventory files as Ansible reads them (`_expand_hostpattern`, shared by its
//! yaml and ini plugins, and `parse_address`): `host:PORT` or `[host]:PORT` splits off a port
//! when what is left is a host name, an IPv4 or an IPv6 address (ranges allowed), else the
//! whole key is the name. An IPv6 address takes a port in brackets only.

use serde_json::Value;

/// The host part of `key` and its port (the digits and their byte index in `key`), as
/// Ansible's `_expand_hostpattern`: without a port when `key` is not an address.
pub(crate) fn split(key: &str) -> (&str, Option<(&str, usize)>) {
    parse_address(key).unwrap_or((key, None))
}

/// A port's digits as Ansible keeps them: a number (`int(port)`), text past 64 bits.
pub(crate) fn port_value(digits: &str) -> Value {
    match digits.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(digits.to_string()),
    }
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
