//! Feeds a reporter made-up events for a small fleet, to see (and show) what users see.
//!
//! ```text
//! cargo run --example progress_demo -- [--plain | --json] [--diff] [-v] [HOSTS]
//! ```
//! On a terminal this draws the progress display; piped, or with `--plain`/`--json`, it prints
//! the plain or JSON lines. HOSTS (default 8) above 10 shows the "+N more" line. Host 3 is
//! unreachable and host 5 fails a reload; every host sets parameters (one of them secret), rewrites master.cf and a secret file.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use postfleet::report::{diff, reporter_for, Event, HostSummary, OutputMode, Reporter, StepStatus};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    let mode = if has("--json") {
        OutputMode::Json
    } else if has("--plain") {
        OutputMode::Plain
    } else {
        OutputMode::Auto
    };
    let verbosity = u8::from(has("-v"));
    let host_count: usize = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(8);

    let reporter = reporter_for(mode, has("--diff"), verbosity);
    let started = Instant::now();
    reporter.event(&Event::RunStarted {
        hosts: host_count,
        check: false,
    });
    let workers: Vec<_> = (1..=host_count)
        .map(|n| {
            let reporter = Arc::clone(&reporter);
            thread::spawn(move || converge(reporter.as_ref(), n))
        })
        .collect();
    let summaries: Vec<HostSummary> = workers
        .into_iter()
        .map(|worker| worker.join().expect("demo host thread"))
        .collect();
    reporter.finish(&summaries, started.elapsed());
}

/// One pretend host: phases with pauses, then its steps, then its summary.
fn converge(reporter: &dyn Reporter, n: usize) -> HostSummary {
    let host = format!("mx{n}.example.org");
    let started = Instant::now();
    let pause = |millis: u64| thread::sleep(Duration::from_millis(millis + 97 * n as u64 % 400));
    let phase = |name: &str| {
        reporter.event(&Event::HostPhase {
            host: host.clone(),
            phase: name.into(),
        })
    };
    let mut summary = HostSummary {
        host: host.clone(),
        ..Default::default()
    };

    phase("connecting");
    pause(300);
    if n == 3 {
        pause(1500);
        summary.unreachable = true;
        summary.error = Some("connect to 10.0.0.3:22: timed out after 2s".into());
        return done(reporter, summary, started);
    }
    summary.timings.connect = started.elapsed();
    phase("gathering facts");
    pause(400);
    summary.timings.facts = started.elapsed() - summary.timings.connect;
    phase("applying");
    pause(600);

    let old_master_cf = "smtp      inet  n       -       y       -       -       smtpd\n\
                         pickup    unix  n       -       y       60      1       pickup\n\
                         cleanup   unix  n       -       y       -       0       cleanup\n\
                         qmgr      unix  n       -       n       300     1       qmgr\n\
                         slow      unix  -       -       y       -       5       smtp\n";
    let new_master_cf = old_master_cf.replace("5       smtp", "2       smtp");
    let params = [
        diff::param_change("default_destination_rate_delay", Some("0s"), Some("1s")),
        diff::param_change(
            "smtp_sasl_password_maps",
            None,
            Some("static:newsletter:s3cret"),
        ),
    ]
    .join("\n");
    let reload = if n == 5 {
        (
            StepStatus::Failed,
            "postfix/postfix-script: fatal: bad config; previous files restored",
        )
    } else {
        (StepStatus::Changed, "config changed")
    };
    let steps = [
        (
            "postfix-newsletter: create instance",
            StepStatus::Ok,
            None,
            None,
        ),
        (
            "postfix-newsletter: main.cf parameters",
            StepStatus::Changed,
            Some("2 set"),
            Some(params),
        ),
        (
            "postfix-newsletter: write /etc/postfix-newsletter/master.cf",
            StepStatus::Changed,
            Some("written"),
            Some(diff::unified(
                "/etc/postfix-newsletter/master.cf",
                old_master_cf,
                &new_master_cf,
            )),
        ),
        (
            "postfix-newsletter: write /etc/postfix-newsletter/sasl_passwd",
            StepStatus::Changed,
            Some("written, postmapped"),
            Some(diff::redacted("/etc/postfix-newsletter/sasl_passwd")),
        ),
        ("postfix-newsletter: reload", reload.0, Some(reload.1), None),
    ];
    for (name, status, message, diff) in steps {
        match status {
            StepStatus::Ok | StepStatus::Skipped => summary.ok += 1,
            StepStatus::Changed => summary.changed += 1,
            StepStatus::Failed => summary.failed += 1,
        }
        reporter.event(&Event::Step {
            host: host.clone(),
            name: name.into(),
            status,
            message: message.map(String::from),
            diff,
        });
        pause(150);
    }
    summary.round_trips = 2;
    summary.timings.apply = started.elapsed() - summary.timings.connect - summary.timings.facts;
    done(reporter, summary, started)
}

fn done(reporter: &dyn Reporter, mut summary: HostSummary, started: Instant) -> HostSummary {
    summary.duration = started.elapsed();
    reporter.event(&Event::HostDone {
        summary: summary.clone(),
    });
    summary
}
