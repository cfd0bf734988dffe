//! `postfleet logs`: an instance's log lines across the fleet, from its maillog_file when it
//! has one, else from the journal of its unit, else from /var/log/mail.log.

use serde::Serialize;

use crate::model::InstanceName;
use crate::outcome::HostProblem;
use postfleet_shell::ExecOutput;

/// `30s`, `10m`, `2h`, `1d` -> seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: use e.g. 30s, 10m, 2h or 1d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("'{text}': unknown unit '{unit}': use s, m, h or d")),
    };
    Ok(n * factor)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub host: String,
    pub instance: String,
    /// The file it came from, or `journal:UNIT` (the unit whose journal it is).
    pub source: String,
    pub line: String,
}

const LOGS_SH: &str = include_str!("logs.sh");

/// Lines of the last `since_secs` seconds, at most `max_lines` per instance.
pub fn script(instances: &[InstanceName], since_secs: u64, max_lines: u32) -> String {
    let (since, max) = (since_secs.to_string(), max_lines.to_string());
    let args = [crate::facts::UNIT_TEMPLATE_AWK, &since, &max]
        .into_iter()
        .chain(instances.iter().map(InstanceName::as_str));
    crate::scripts::script(args, LOGS_SH)
}

pub fn read(host: &str, out: ExecOutput) -> Result<Vec<LogLine>, HostProblem> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut instance = String::new();
    let mut source = String::new();
    let mut lines = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("@@missing ") {
            return Err(HostProblem::Failed(format!(
                "no instance named {name} on this host"
            )));
        }
        if let Some(rest) = line.strip_prefix("@@inst ") {
            let (name, src) = rest.split_once(' ').unwrap_or((rest, ""));
            instance = name.into();
            source = src.into();
            continue;
        }
        lines.push(LogLine {
            host: host.into(),
            instance: instance.clone(),
            source: source.clone(),
            line: line.into(),
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("10m").unwrap(), 600);
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("1d").unwrap(), 86400);
        assert!(parse_duration("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn script_is_valid_shell_and_reads_back() {
        let s = script(
            &[InstanceName::parse("postfix-newsletter").unwrap()],
            600,
            50,
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sh");
        std::fs::write(&path, &s).unwrap();
        assert!(std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap()
            .success());
        let out = ExecOutput {
            stdout: b"@@inst postfix-newsletter /var/log/mail.log\nNov 23 10:00:00 h1 postfix-newsletter/smtpd[1]: connect\n".to_vec(),
            stderr: vec![],
            exit_status: Some(0),
        };
        let lines = read("h1", out).unwrap();
        assert_eq!(lines[0].source, "/var/log/mail.log");
        assert!(lines[0].line.ends_with("connect"));
    }
}
