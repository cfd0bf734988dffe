//! The command line's contract for bad input: one precise message, exit 4, no host touched
//! (the inventories here point at hosts that do not exist: reaching for them would fail
//! differently), and help that teaches.

mod common;

use common::postfleet;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const INVENTORY: &str = "all:\n  children:\n    mx:\n      hosts:\n        nowhere1: { ssh_host: 127.0.0.1, ssh_port: 1 }\n";

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = postfleet(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_one_precise_message_and_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "inv.yml", INVENTORY);
    let cases = [
        (
            "unknown-key.yml",
            "- hosts: mx\n  instances:\n    - name: postfix-a\n      tabels: []\n",
            "unknown-key.yml:4:7",
        ),
        (
            "bad-name.yml",
            "- hosts: mx\n  instances:\n    - name: newsletter\n",
            "bad-name.yml:3:13",
        ),
        (
            "undefined.yml",
            "- hosts: mx\n  instances:\n    - name: \"-\"\n      main_cf:\n        relayhost: \"{{ nope }}\"\n",
            "variable `nope` is not defined",
        ),
        (
            "duplicate.yml",
            "- hosts: mx\n  hosts: mx\n  instances: []\n",
            "duplicate.yml:2:3",
        ),
    ];
    for (name, text, expected) in cases {
        let pb = write(dir.path(), name, text);
        let (code, stderr) = stderr_of(&["apply", "-i", &inv, &pb, "--output", "plain"]);
        assert_eq!(code, 4, "{name}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
        assert_eq!(
            stderr.matches("error:").count(),
            1,
            "{name}: one message:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // inventory errors, -e errors, unknown --limit, usage errors
    let bad_inv = write(dir.path(), "bad-inv.yml", "all:\n  hostz: {}\n");
    let huge_range = write(
        dir.path(),
        "huge.yml",
        "all:\n  hosts:\n    h[0:99999999999]:\n",
    );
    let pb = write(
        dir.path(),
        "ok.yml",
        "- hosts: mx\n  instances:\n    - name: \"-\"\n",
    );
    for (args, expected) in [
        (
            vec!["apply", "-i", bad_inv.as_str(), pb.as_str()],
            "bad-inv.yml:2:3",
        ),
        (
            vec!["apply", "-i", inv.as_str(), pb.as_str(), "-e", "novalue"],
            "key=value",
        ),
        (
            vec!["apply", "-i", inv.as_str(), pb.as_str(), "--limit", "mx9"],
            "no host matches 'mx9'",
        ),
        (
            vec!["apply", "-i", inv.as_str(), pb.as_str(), "--forks"],
            "--forks",
        ),
        (
            vec!["queue", "purge", "-i", inv.as_str(), "--instance", "bad"],
            "postfix-",
        ),
        // numbers that would overflow a deadline (exit 101 before) or a range that would
        // take terabytes (an abort before): one message, exit 4
        (
            vec![
                "apply",
                "-i",
                inv.as_str(),
                pb.as_str(),
                "--connect-timeout",
                "18446744073709551615",
            ],
            "--connect-timeout",
        ),
        (
            vec!["status", "-i", inv.as_str(), "--command-timeout", "0"],
            "--command-timeout",
        ),
        (
            vec!["inventory", "-i", huge_range.as_str()],
            "more than the 100000",
        ),
    ] {
        let (code, stderr) = stderr_of(&args);
        assert_eq!(code, 4, "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn help_teaches() {
    let out = postfleet(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "apply",
        "plan",
        "status",
        "queue",
        "logs",
        "lab",
        "Exit codes",
        "Examples",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = postfleet(&["apply", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--limit",
        "--check",
        "--diff",
        "--forks",
        "--detailed-exitcode",
        "--accept-new",
    ] {
        assert!(text.contains(word), "apply --help lacks {word}");
    }
}
