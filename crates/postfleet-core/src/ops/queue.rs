//! `postfleet queue list|flush|purge`: per-instance queues across the fleet.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::model::InstanceName;
use crate::outcome::HostProblem;
use postfleet_shell::ExecOutput;

const QUEUE_SH: &str = include_str!("queue.sh");

/// queue.sh with `action` for `instances` (none: every instance).
fn queue_script(action: &str, instances: &[InstanceName]) -> String {
    let args = std::iter::once(action).chain(instances.iter().map(InstanceName::as_str));
    crate::scripts::script(args, QUEUE_SH)
}

/// One queued message (from `postqueue -j`, which `mailq` formats for people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedMessage {
    pub host: String,
    pub instance: String,
    pub queue_id: String,
    /// active, deferred, hold, incoming, maildrop
    pub queue_name: String,
    pub arrival_time: i64,
    pub size: u64,
    pub sender: String,
    pub recipients: Vec<String>,
    /// Why delivery is delayed, for deferred mail.
    pub reason: String,
}

#[derive(Deserialize)]
struct PostqueueRecipient {
    address: String,
    #[serde(default)]
    delay_reason: String,
}

#[derive(Deserialize)]
struct PostqueueEntry {
    queue_name: String,
    queue_id: String,
    arrival_time: i64,
    #[serde(default)]
    message_size: u64,
    sender: String,
    recipients: Vec<PostqueueRecipient>,
}

/// Per instance: `@@inst NAME`, then its `postqueue -j` lines; unknown names say so.
pub fn list_script(instances: &[InstanceName]) -> String {
    queue_script("list", instances)
}

fn missing(name: &str) -> HostProblem {
    HostProblem::Failed(format!("no instance named {name} on this host"))
}

pub fn read_list(host: &str, out: ExecOutput) -> Result<Vec<QueuedMessage>, HostProblem> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut instance = String::new();
    let mut rows = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("@@missing ") {
            return Err(missing(name));
        }
        if let Some(name) = line.strip_prefix("@@inst ") {
            instance = name.to_string();
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let entry: PostqueueEntry = serde_json::from_str(line).map_err(|e| {
            HostProblem::Failed(format!("unexpected postqueue -j output ({e}): {line}"))
        })?;
        rows.push(QueuedMessage {
            host: host.into(),
            instance: instance.clone(),
            queue_id: entry.queue_id,
            queue_name: entry.queue_name,
            arrival_time: entry.arrival_time,
            size: entry.message_size,
            sender: entry.sender,
            reason: entry
                .recipients
                .iter()
                .map(|r| r.delay_reason.as_str())
                .find(|r| !r.is_empty())
                .unwrap_or("")
                .to_string(),
            recipients: entry.recipients.into_iter().map(|r| r.address).collect(),
        });
    }
    if out.exit_status != Some(0) {
        return Err(HostProblem::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(rows)
}

/// What flush or purge did to one instance on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueAction {
    pub host: String,
    pub instance: String,
    /// Messages in the queue before (flush) or deleted (purge).
    pub messages: u64,
}

/// Counts messages per instance (`@@count NAME N`).
pub fn count_script(instances: &[InstanceName]) -> String {
    queue_script("count", instances)
}

/// `postqueue -f` per instance, with the count of messages it asked to deliver.
pub fn flush_script(instances: &[InstanceName]) -> String {
    queue_script("flush", instances)
}

/// `postsuper -d ALL` per instance; postsuper tells how many it deleted.
pub fn purge_script(instances: &[InstanceName]) -> String {
    queue_script("purge", instances)
}

pub fn read_counts(host: &str, out: ExecOutput) -> Result<Vec<QueueAction>, HostProblem> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("@@missing ") {
            return Err(missing(name));
        }
        if let Some(text) = line.strip_prefix("@@error ") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap_or_default();
            return Err(HostProblem::Failed(
                String::from_utf8_lossy(&bytes).trim().to_string(),
            ));
        }
        if let Some(rest) = line.strip_prefix("@@count ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            rows.push(QueueAction {
                host: host.into(),
                instance: name.into(),
                messages: n.parse().unwrap_or(0),
            });
        }
    }
    if out.exit_status != Some(0) {
        return Err(HostProblem::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> ExecOutput {
        ExecOutput {
            stdout: stdout.as_bytes().to_vec(),
            stderr: vec![],
            exit_status: Some(0),
        }
    }

    #[test]
    fn reads_postqueue_json() {
        let rows = read_list(
            "h1",
            out("@@inst postfix-newsletter\n{\"queue_name\": \"deferred\", \"queue_id\": \"4AB\", \"arrival_time\": 1700000000, \"message_size\": 512, \"forced_expire\": false, \"sender\": \"news@example.org\", \"recipients\": [{\"address\": \"a@orange.fr\", \"delay_reason\": \"connect refused\"}]}\n"),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].instance, "postfix-newsletter");
        assert_eq!(rows[0].recipients, ["a@orange.fr"]);
        assert_eq!(rows[0].reason, "connect refused");
    }

    #[test]
    fn unknown_instance_is_an_error() {
        let err = read_list("h1", out("@@missing postfix-nope\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no instance named postfix-nope on this host"
        );
    }

    #[test]
    fn reads_counts() {
        let rows = read_counts("h1", out("@@count - 0\n@@count postfix-newsletter 7\n")).unwrap();
        assert_eq!(rows[1].messages, 7);
    }

    #[test]
    fn scripts_are_valid_shell() {
        let names = [InstanceName::parse("postfix-newsletter").unwrap()];
        for script in [
            list_script(&names),
            list_script(&[]),
            count_script(&names),
            flush_script(&names),
            purge_script(&names),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.sh");
            std::fs::write(&path, &script).unwrap();
            let ok = std::process::Command::new("sh")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap();
            assert!(ok.success(), "{script}");
        }
    }
}
