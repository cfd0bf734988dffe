//! Check mode (`plan`) for a fleet: the changes of every host, one block per distinct change
//! with the hosts it applies to (`h1-h4, h7 (5 hosts)`), printed before the recap. Identical
//! changes read once; a host that drifted stands out as a block of its own. Each host's step
//! lines still show as they come, without their diffs; `--per-host` and JSON keep the detail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postfleet_core::plan::changes::host_ranges;

use super::{ApplyOutcome, Event, Reporter};

pub struct GroupedChanges {
    inner: Arc<dyn Reporter>,
    /// (host, step, change), as they came.
    seen: Mutex<Vec<(String, String, String)>>,
}

impl GroupedChanges {
    pub fn new(inner: Arc<dyn Reporter>) -> GroupedChanges {
        GroupedChanges {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }
}

impl Reporter for GroupedChanges {
    fn event(&self, event: &Event) {
        match event {
            // Every step a host would take: its change, if it has one (a restart has none,
            // and the reviewer wants to see which hosts drop their connections).
            Event::Step {
                host,
                name,
                status: status @ super::StepStatus::Changed,
                message,
                diff,
            } => {
                let change = diff.clone().unwrap_or_default();
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                    host.clone(),
                    name.clone(),
                    change,
                ));
                self.inner.event(&Event::Step {
                    host: host.clone(),
                    name: name.clone(),
                    status: *status,
                    message: message.clone(),
                    diff: None,
                });
            }
            other => self.inner.event(other),
        }
    }

    fn finish(&self, summaries: &[ApplyOutcome], elapsed: Duration) {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()));
        let order: Vec<&str> = summaries.iter().map(|s| s.host.as_str()).collect();
        let text = render(&seen, &order);
        if !text.is_empty() {
            self.inner.suspend(&mut || print!("{text}"));
        }
        self.inner.finish(summaries, elapsed);
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        self.inner.suspend(f)
    }
}

/// One block per distinct (step, change), in the order first seen; its hosts in `order`
/// (the run's host order).
pub fn render(seen: &[(String, String, String)], order: &[&str]) -> String {
    let mut blocks: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for (host, step, change) in seen {
        match blocks.iter_mut().find(|(s, c, _)| s == step && c == change) {
            Some((_, _, hosts)) => hosts.push(host.clone()),
            None => blocks.push((step, change, vec![host.clone()])),
        }
    }
    if blocks.is_empty() {
        return String::new();
    }
    let position = |h: &String| order.iter().position(|o| o == h).unwrap_or(usize::MAX);
    // In the run's host order (not the order hosts happened to finish in).
    for (_, _, hosts) in &mut blocks {
        hosts.sort_by_key(position);
    }
    blocks.sort_by_key(|(_, _, hosts)| hosts.first().map(position));
    let mut out = format!(
        "\nchanges ({} distinct, hosts grouped; --per-host shows them host by host):\n",
        blocks.len()
    );
    for (step, change, hosts) in blocks {
        out.push_str(&format!("\n{step} on {}\n", host_ranges(&hosts)));
        for line in change.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_changes_read_once_and_drift_stands_out() {
        let change = "/etc/postfix/main.cf:\n  relayhost: (not set) -> [r]:25\n";
        let drift = "/etc/postfix/main.cf:\n  relayhost: [old]:25 -> [r]:25\n";
        let mut seen = Vec::new();
        for host in ["h3", "h1", "h2", "h5"] {
            seen.push((
                host.to_string(),
                "-: main.cf".to_string(),
                change.to_string(),
            ));
        }
        seen.push(("h4".into(), "-: main.cf".into(), drift.into()));
        let text = render(&seen, &["h1", "h2", "h3", "h4", "h5"]);
        assert!(text.contains("2 distinct"), "{text}");
        assert!(
            text.contains("-: main.cf on h1-h3, h5 (4 hosts)\n    /etc/postfix/main.cf:\n      relayhost: (not set) -> [r]:25\n"),
            "{text}"
        );
        assert!(text.contains("-: main.cf on h4 (1 host)\n"), "{text}");
        assert_eq!(render(&[], &[]), "");
    }
}
