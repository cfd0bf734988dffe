//! The recap printed at the end of a run: one row per host in the order given, a totals row,
//! then the reason of every failed or unreachable host.

use std::time::Duration;

use super::style::{paint, visible_width, Colour};
use super::table::{render_aligned, Align};
use super::{human_duration, ApplyOutcome, Verdict};

const HEADERS: [&str; 7] = [
    "HOST",
    "OK",
    "CHANGED",
    "FAILED",
    "UNREACHABLE",
    "ROUND TRIPS",
    "DURATION",
];
const ALIGNS: [Align; 7] = [
    Align::Left,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
];

/// The recap as text; `colour` paints non-zero counts (ok green, changed yellow, failed and
/// unreachable red) and each host name by how it ended. `elapsed` is the run's wall-clock time.
pub fn render(summaries: &[ApplyOutcome], elapsed: Duration, colour: bool) -> String {
    let count = |n: u32, c: Colour| {
        if n > 0 {
            paint(&n.to_string(), c, colour)
        } else {
            n.to_string()
        }
    };
    let mut rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|summary| {
            vec![
                paint(&summary.host, Colour::of_host(summary.verdict()), colour),
                count(summary.value.ok, Colour::Green),
                count(summary.value.changed, Colour::Yellow),
                count(summary.failures(), Colour::Red),
                count(u32::from(summary.unreachable()), Colour::Red),
                summary.value.round_trips.to_string(),
                human_duration(summary.value.duration),
            ]
        })
        .collect();

    let total = |field: fn(&ApplyOutcome) -> u32| summaries.iter().map(field).sum::<u32>();
    let host_word = if summaries.len() == 1 {
        "host"
    } else {
        "hosts"
    };
    rows.push(vec![
        format!("total: {} {host_word}", summaries.len()),
        count(total(|s| s.value.ok), Colour::Green),
        count(total(|s| s.value.changed), Colour::Yellow),
        count(total(|s| s.failures()), Colour::Red),
        count(total(|s| u32::from(s.unreachable())), Colour::Red),
        total(|s| s.value.round_trips).to_string(),
        human_duration(elapsed),
    ]);

    let mut headers = HEADERS.to_vec();
    let mut aligns = ALIGNS.to_vec();
    // Drift found on some host: how much, after FAILED (the column only then).
    if summaries.iter().any(|s| s.value.drift > 0) {
        let at = 4;
        headers.insert(at, "DRIFT");
        aligns.insert(at, Align::Right);
        for (row, summary) in rows.iter_mut().zip(summaries) {
            row.insert(at, count(summary.value.drift, Colour::Yellow));
        }
        if let Some(totals) = rows.last_mut() {
            totals.insert(at, count(total(|s| s.value.drift), Colour::Yellow));
        }
    }
    // A rollout in batches: each host's batch first.
    let batched = summaries.iter().any(|s| s.value.batch > 0);
    if batched {
        headers.insert(0, "BATCH");
        aligns.insert(0, Align::Right);
        for (row, summary) in rows.iter_mut().zip(summaries) {
            row.insert(0, summary.value.batch.to_string());
        }
        if let Some(totals) = rows.last_mut() {
            totals.insert(0, String::new());
        }
    }
    let table = render_aligned(&headers, &rows, &aligns);
    let mut lines: Vec<&str> = table.lines().collect();
    let rule = "-".repeat(lines.first().map_or(0, |header| visible_width(header)));
    // The totals row is the last line; a rule sets it apart from the hosts.
    lines.insert(lines.len() - 1, &rule);

    let mut out = lines.join("\n");
    out.push('\n');
    out.push_str(&errors(summaries, colour));
    out
}

/// `HOST (failed|unreachable): reason` for each host that has one, continuation lines indented.
fn errors(summaries: &[ApplyOutcome], colour: bool) -> String {
    let mut out = String::new();
    for summary in summaries {
        let outcome = summary.verdict();
        if outcome == Verdict::NotAttempted {
            continue; // one line for all of them, below
        }
        let reason = match (summary.error(), outcome) {
            (Some(error), _) => error,
            (None, Verdict::Failed) => "a step failed (see above)",
            (None, Verdict::Unreachable) => "no reason given",
            (None, _) => continue,
        };
        let label = format!("{} ({})", summary.host, outcome.as_str());
        out.push_str(&paint(&label, Colour::of_host(outcome), colour));
        out.push_str(": ");
        out.push_str(&reason.trim_end().replace('\n', "\n    "));
        out.push('\n');
    }
    let never: Vec<&ApplyOutcome> = summaries
        .iter()
        .filter(|s| s.verdict() == Verdict::NotAttempted)
        .collect();
    if let Some(first) = never.first() {
        let names: Vec<String> = never.iter().map(|s| s.host.clone()).collect();
        let count = match never.len() {
            1 => "1 host".to_string(),
            n => format!("{n} hosts"),
        };
        let label = format!("not attempted ({count}: {})", names.join(", "));
        out.push_str(&paint(
            &label,
            Colour::of_host(Verdict::NotAttempted),
            colour,
        ));
        out.push_str(": ");
        out.push_str(first.error().unwrap_or("the rollout stopped"));
        out.push('\n');
    }
    out
}

/// Where each host's time went (`--timings`): connect, facts, plan, apply, total.
pub fn timings_table(summaries: &[ApplyOutcome]) -> String {
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.host.clone(),
                secs(s.value.timings.connect),
                secs(s.value.timings.facts),
                secs(s.value.timings.plan),
                secs(s.value.timings.apply),
                secs(s.value.duration),
                s.value.round_trips.to_string(),
            ]
        })
        .collect();
    super::table::render(
        &[
            "HOST",
            "CONNECT S",
            "FACTS S",
            "PLAN S",
            "APPLY S",
            "TOTAL S",
            "ROUND TRIPS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use postfleet_core::outcome::{ApplyTally, HostProblem};

    fn summary(host: &str, ok: u32, changed: u32, failed: u32, millis: u64) -> ApplyOutcome {
        ApplyOutcome {
            host: host.into(),
            value: ApplyTally {
                ok,
                changed,
                failed,
                round_trips: 2,
                duration: Duration::from_millis(millis),
                ..Default::default()
            },
            problem: None,
        }
    }

    fn fleet() -> Vec<ApplyOutcome> {
        let mut failed = summary("mx2.example.org", 4, 1, 1, 2_300);
        failed.problem = Some(HostProblem::Failed(
            "reload failed: postfix/postfix-script: fatal: bad config\n\
             previous files restored"
                .into(),
        ));
        let unreachable = ApplyOutcome {
            value: ApplyTally {
                round_trips: 0,
                duration: Duration::from_secs(10),
                ..Default::default()
            },
            host: "mx10".into(),
            problem: Some(HostProblem::Unreachable(
                "connect to 10.0.0.10:22: timed out after 10s".into(),
            )),
        };
        vec![summary("mx1", 12, 3, 0, 1_250), failed, unreachable]
    }

    #[test]
    fn recap_has_a_row_per_host_in_order_a_totals_row_and_errors() {
        let text = render(&fleet(), Duration::from_millis(10_400), false);
        assert_eq!(
            text,
            "\
HOST             OK  CHANGED  FAILED  UNREACHABLE  ROUND TRIPS  DURATION
mx1              12        3       0            0            2     1.25s
mx2.example.org   4        1       1            0            2     2.30s
mx10              0        0       0            1            0     10.0s
------------------------------------------------------------------------
total: 3 hosts   16        4       1            1            4     10.4s
mx2.example.org (failed): reload failed: postfix/postfix-script: fatal: bad config
    previous files restored
mx10 (unreachable): connect to 10.0.0.10:22: timed out after 10s
"
        );
    }

    #[test]
    fn coloured_recap_keeps_its_columns_aligned() {
        let plain = render(&fleet(), Duration::from_secs(10), false);
        let coloured = render(&fleet(), Duration::from_secs(10), true);
        assert_ne!(plain, coloured);
        assert!(
            coloured.contains("\x1b[33m3\x1b[0m"),
            "changed count in yellow"
        );
        let widths = |text: &str| text.lines().map(visible_width).collect::<Vec<_>>();
        assert_eq!(widths(&plain), widths(&coloured));
    }

    #[test]
    fn drift_gets_a_column_only_when_there_is_some() {
        let mut hosts = fleet();
        assert!(!render(&hosts, Duration::from_secs(1), false).contains("DRIFT"));
        hosts[0].value.drift = 2;
        let text = render(&hosts, Duration::from_secs(1), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("HOST             OK  CHANGED  FAILED  DRIFT  UNREACHABLE"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("mx1              12        3       0      2"),
            "{text}"
        );
        assert!(
            lines[5].starts_with("total: 3 hosts   16        4       1      2"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_step_without_host_error_is_still_explained() {
        let text = render(
            &[summary("mx1", 1, 0, 1, 10)],
            Duration::from_secs(1),
            false,
        );
        assert!(text.contains("total: 1 host "), "{text}");
        assert!(
            text.ends_with("mx1 (failed): a step failed (see above)\n"),
            "{text}"
        );
    }
}
