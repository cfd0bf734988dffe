//! Changes of main.cf and master.cf as a reviewer reads them: per parameter and per service,
//! not as a file diff (postconf appends in hash order, so a file diff's context differs from
//! host to host even for the same change). Made from the texts as they may be shown (secret
//! values already hidden).

use super::{FileChange, FileFormat};

/// One line per changed parameter or service, in name order; None for files of other kinds
/// (tables, whole files: a unified diff shows them) and secret files.
pub fn by_setting(change: &FileChange) -> Option<Vec<String>> {
    let (old, new) = change.shown()?;
    match change.format {
        FileFormat::Plain => None,
        FileFormat::MainCf => Some(compare(&main_cf_params(&old), &main_cf_params(&new), "")),
        FileFormat::MasterCf => Some(compare(
            &master_cf_services(&old),
            &master_cf_services(&new),
            "master.cf ",
        )),
    }
}

/// `name -> value` of every parameter set, by name.
fn main_cf_params(text: &str) -> Vec<(String, String)> {
    let mut params = super::maincf::parameters(text);
    params.sort();
    params
}

/// `service/type -> its fields` of every master.cf entry.
fn master_cf_services(text: &str) -> Vec<(String, String)> {
    let mut services: Vec<(String, String)> = super::mastercf::entries(text)
        .into_iter()
        .filter(|e| e.words.len() >= 2)
        .map(|e| {
            (
                format!("{}/{}", e.words[0], e.words[1]),
                e.words[2..].join(" "),
            )
        })
        .collect();
    services.sort();
    services
}

fn compare(old: &[(String, String)], new: &[(String, String)], prefix: &str) -> Vec<String> {
    let find = |list: &[(String, String)], key: &str| {
        list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let mut keys: Vec<&String> = old.iter().chain(new).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let mut lines = Vec::new();
    for key in keys {
        let line = match (find(old, key), find(new, key), prefix.is_empty()) {
            (Some(a), Some(b), _) if a == b => continue,
            (Some(a), Some(b), true) => format!("{key}: {a} -> {b}"),
            (None, Some(b), true) => format!("{key}: (not set) -> {b}"),
            (Some(a), None, true) => format!("{key}: {a} -> (removed)"),
            (Some(a), Some(b), false) => format!("{prefix}{key}: {a} -> {b}"),
            (None, Some(b), false) => format!("{prefix}{key}: added ({b})"),
            (Some(_), None, false) => format!("{prefix}{key}: removed"),
            (None, None, _) => continue,
        };
        lines.push(line);
    }
    lines
}

/// Host names as a reader scans them: runs of one prefix with consecutive numbers shortened
/// (`h1-h4, h7, mx-a`), then the count.
pub fn host_ranges(hosts: &[String]) -> String {
    let split = |name: &str| {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, number) = name.split_at(name.len() - digits);
        (stem.to_string(), number.parse::<u64>().ok(), number.len())
    };
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < hosts.len() {
        let (stem, number, width) = split(&hosts[i]);
        let mut j = i;
        if let Some(first) = number {
            while j + 1 < hosts.len() {
                let (next_stem, next, next_width) = split(&hosts[j + 1]);
                let expected = first + (j + 1 - i) as u64;
                if next_stem == stem && next == Some(expected) && next_width == width {
                    j += 1;
                } else {
                    break;
                }
            }
        }
        parts.push(if j > i + 1 {
            format!("{}-{}", hosts[i], hosts[j])
        } else if j == i + 1 {
            format!("{}, {}", hosts[i], hosts[j])
        } else {
            hosts[i].clone()
        });
        i = j + 1;
    }
    let count = if hosts.len() == 1 {
        "1 host".to_string()
    } else {
        format!("{} hosts", hosts.len())
    };
    format!("{} ({count})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(format: FileFormat, old: &str, new: &str) -> FileChange {
        FileChange {
            path: "/etc/postfix/x".into(),
            old: Some(old.into()),
            new: new.into(),
            secret: false,
            format,
        }
    }

    #[test]
    fn main_cf_changes_are_per_parameter_whatever_the_order() {
        let old = "a = 1\nthrottled_destination_rate_delay = 1s\nold_one = x\n";
        let new = "throttled_destination_rate_delay = 3s\na = 1\nrelayhost = [r]:25\n  \n";
        assert_eq!(
            by_setting(&change(FileFormat::MainCf, old, new)).unwrap(),
            [
                "old_one: x -> (removed)",
                "relayhost: (not set) -> [r]:25",
                "throttled_destination_rate_delay: 1s -> 3s",
            ]
        );
    }

    #[test]
    fn master_cf_changes_are_per_service() {
        let old = "smtp inet n - y - - smtpd\nslow unix - - n - 5 smtp\n";
        let new = "smtp inet n - y - - smtpd\nslow unix - - n - 2 smtp\nthrottled unix - - n - - smtp\n  -o x=1\n";
        assert_eq!(
            by_setting(&change(FileFormat::MasterCf, old, new)).unwrap(),
            [
                "master.cf slow/unix: - - n - 5 smtp -> - - n - 2 smtp",
                "master.cf throttled/unix: added (- - n - - smtp -o x=1)",
            ]
        );
    }

    #[test]
    fn secrets_stay_hidden_and_other_files_keep_their_diff() {
        let lines = by_setting(&change(
            FileFormat::MainCf,
            "smtp_sasl_password_maps = static:u:old\n",
            "smtp_sasl_password_maps = static:u:new\n",
        ))
        .unwrap();
        assert_eq!(lines.len(), 1);
        assert!(
            !lines[0].contains("old") && !lines[0].contains("new"),
            "{lines:?}"
        );
        assert!(by_setting(&change(FileFormat::Plain, "a", "b")).is_none());
    }

    #[test]
    fn hosts_read_as_ranges() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            host_ranges(&names(&["h1", "h2", "h3", "h4", "h7"])),
            "h1-h4, h7 (5 hosts)"
        );
        assert_eq!(
            host_ranges(&names(&["mx01", "mx02"])),
            "mx01, mx02 (2 hosts)"
        );
        assert_eq!(host_ranges(&names(&["web"])), "web (1 host)");
        assert_eq!(
            host_ranges(&names(&["a9", "a10", "b1"])),
            "a9, a10, b1 (3 hosts)",
            "another width is another run"
        );
    }
}
