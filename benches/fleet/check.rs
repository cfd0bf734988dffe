//! After every run: each host's end state (benches/check/state.sh, normalized) must be
//! benches/check/expected.txt, the state postfleet's newsletter playbook describes.

use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::lab::LabRun;

const STATE_SCRIPT: &str = include_str!("../check/state.sh");

/// What the hosts looked like after a run.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Hosts whose state differs from the expected one, with the first difference.
    pub mismatches: Vec<String>,
    /// sha256 of the normalized state every matching host printed.
    pub fingerprint: String,
}

impl Verdict {
    pub fn converged(&self) -> bool {
        self.mismatches.is_empty()
    }
}

pub fn verify(lab: &LabRun, expected: &str) -> Verdict {
    let outputs: Vec<(String, Result<String, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = lab
            .hosts
            .iter()
            .map(|host| {
                let mut cmd = lab.ssh(host);
                cmd.args(["sh", "-s", "--", &host.name, &lab.name, &lab.gateway]);
                (host.name.clone(), scope.spawn(move || state_of(cmd)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| (name, h.join().unwrap_or_else(|_| Err("panicked".into()))))
            .collect()
    });
    let mut verdict = Verdict {
        fingerprint: hex(&Sha256::digest(expected.as_bytes())),
        ..Verdict::default()
    };
    for (name, output) in outputs {
        match output {
            Ok(text) if text == expected => {}
            Ok(text) => verdict
                .mismatches
                .push(format!("{name}: {}", first_difference(expected, &text))),
            Err(e) => verdict.mismatches.push(format!("{name}: {e}")),
        }
    }
    verdict
}

fn state_of(mut cmd: Command) -> Result<String, String> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ssh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(STATE_SCRIPT.as_bytes())
            .map_err(|e| format!("ssh stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("ssh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "state check failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `expected line N: "..." / got: "..."`.
fn first_difference(expected: &str, got: &str) -> String {
    let mut want = expected.lines();
    let mut have = got.lines();
    for n in 1.. {
        match (want.next(), have.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => {
                return format!(
                    "line {n}: expected {:?}, got {:?}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                )
            }
        }
    }
    unreachable!("the loop returns")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
