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

/// One run per inventory at a time, whatever the session: a run started from cron (no
/// XDG_RUNTIME_DIR) and one from a login shell (with one) exclude each other; the second
/// exits 6 at once and touches nothing.
#[test]
fn two_runs_of_one_inventory_exclude_each_other_across_sessions() {
    use std::io::Read;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // A "host" on loopback that accepts and never says a word: the first run waits on it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let known = write(dir.path(), "known_hosts", "");
    let inv = write(
        dir.path(),
        "inv.yml",
        &format!(
            "all:\n  vars: {{ ssh_known_hosts_file: {known} }}\n  children:\n    mx:\n      hosts:\n        \
             quiet1: {{ ssh_host: 127.0.0.1, ssh_port: {port} }}\n"
        ),
    );
    let pb = write(
        dir.path(),
        "pb.yml",
        "- hosts: mx\n  instances:\n    - name: \"-\"\n",
    );
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let run = |runtime_dir: Option<&str>| {
        let mut cmd = Command::new(common::postfleet_bin());
        cmd.args([
            "apply",
            "-i",
            &inv,
            &pb,
            "--output",
            "plain",
            "--connect-timeout",
            "20",
        ])
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        match runtime_dir {
            Some(d) => cmd.env("XDG_RUNTIME_DIR", d),
            None => cmd.env_remove("XDG_RUNTIME_DIR"),
        };
        cmd
    };
    let mut first = run(None).spawn().unwrap();
    // The first run holds the lock once it is connecting: wait for the connection.
    let (_conn, _) = silent.accept().unwrap();
    let runtime = dir.path().join("run-user");
    std::fs::create_dir(&runtime).unwrap();
    let second = run(Some(runtime.to_str().unwrap())).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("another postfleet run"), "{stderr}");
    first.kill().unwrap();
    let _ = first.wait();
    let mut rest = String::new();
    let _ = first.stderr.take().unwrap().read_to_string(&mut rest);
    // and the lock lives in the user's own state dir, private
    let locks = home.join(".local/state/postfleet/locks");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&locks).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{rest}");
}

#[test]
fn bash_loads_the_completions_and_they_offer_the_subcommands() {
    let out = postfleet(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "postfleet.bash",
        &String::from_utf8_lossy(&out.stdout),
    );
    // What `complete -p` says once sourced, and what completing `postfleet a` offers.
    let probe = format!(
        "source {script} && complete -p postfleet && \
         COMP_WORDS=(postfleet a) COMP_CWORD=1 COMP_LINE='postfleet a' COMP_POINT=11 && \
         _postfleet postfleet a postfleet && printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let ran = std::process::Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(said.contains("-F _postfleet postfleet"), "{said}");
    assert!(said.lines().any(|l| l == "apply"), "{said}");
    for shell in ["zsh", "fish"] {
        let out = postfleet(&["completions", shell]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            text.contains("postfleet") && text.contains("apply"),
            "{shell}: {text}"
        );
    }
    // a shell it does not know is bad input
    assert_eq!(postfleet(&["completions", "tcsh"]).status.code(), Some(4));
}

#[test]
fn the_manual_page_renders_with_every_subcommand_and_the_exit_codes() {
    let out = postfleet(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("postfleet.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let rendered = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    // Justified text has runs of blanks: words are matched with single spaces.
    let text = String::from_utf8_lossy(&rendered.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&rendered.stderr).contains("warning"),
        "roff warnings: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    for wanted in [
        "NAME",
        "SYNOPSIS",
        "Exit codes",
        "--inventory",
        "--max-fail-percentage",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
    for sub in [
        "APPLY",
        "PLAN",
        "DRIFT",
        "INVENTORY",
        "STATUS",
        "QUEUE",
        "LOGS",
        "LAB",
        "COMPLETIONS",
    ] {
        assert!(
            text.contains(&format!("POSTFLEET {sub}")),
            "no section for {sub}:\n{text}"
        );
    }
}

#[test]
fn bad_input_shows_the_offending_line_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "inv.yml", INVENTORY);
    let pb = write(
        dir.path(),
        "site.yml",
        "- hosts: mx\n  instances:\n    - name: postfix-a\n      tabels: []\n",
    );
    let (code, err) = stderr_of(&["plan", "-i", &inv, &pb]);
    assert_eq!(code, 4, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("error: ") && l.contains("site.yml:4:7"))
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(lines[at + 1], "  |", "{err}");
    assert_eq!(lines[at + 2], "4 |       tabels: []", "{err}");
    assert_eq!(lines[at + 3], "  |       ^", "{err}");
}

// ---- inventory formats through the binary

/// `postfleet inventory --json` on `args`: the exit code, the parsed output and stderr.
fn inventory_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["inventory", "--json", "--ssh-config", "none"];
    all.extend_from_slice(args);
    let out = postfleet(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// The listing without the `from` of each connection setting (it names the file).
fn without_from(mut listing: serde_json::Value) -> serde_json::Value {
    if let Some(hosts) = listing["hosts"].as_object_mut() {
        for host in hosts.values_mut() {
            if let Some(settings) = host["connection"].as_object_mut() {
                for setting in settings.values_mut() {
                    if let Some(setting) = setting.as_object_mut() {
                        setting.remove("from");
                    }
                }
            }
        }
    }
    listing
}

const SAME_YAML: &str = "\
all:
  vars:
    relay: all-relay
  hosts:
    bastion:
      ansible_host: 192.0.2.1
  children:
    mx:
      vars:
        level: mx
        relay_port: 25
      hosts:
        mx[01:02].lab:
        mx03.lab:
          ansible_port: 2222
          level: host
      children:
        mx_eu:
          vars:
            level: eu
            zone: eu-west
          hosts:
            mx04.lab:
    newsletter:
      vars:
        throttle: 5
        enabled: true
      hosts:
        mx02.lab:
";

const SAME_INI: &str = "\
bastion ansible_host=192.0.2.1

[mx]
mx[01:02].lab
mx03.lab:2222 level=host

[mx:vars]
level=mx
relay_port=25

[mx:children]
mx_eu

[mx_eu]
mx04.lab

[mx_eu:vars]
level = eu
zone = eu-west

[newsletter]
mx02.lab

[newsletter:vars]
throttle=5
enabled=True

[all:vars]
relay=all-relay
";

/// What ansible-core 2.19 prints for `ansible-inventory -i SAME_INI --list --export`.
const SAME_JSON: &str = r#"{
    "_meta": {
        "hostvars": {
            "bastion": {
                "ansible_host": "192.0.2.1"
            },
            "mx03.lab": {
                "ansible_port": 2222,
                "level": "host"
            }
        },
        "profile": "inventory_legacy"
    },
    "all": {
        "children": [
            "ungrouped",
            "mx",
            "newsletter"
        ],
        "vars": {
            "relay": "all-relay"
        }
    },
    "mx": {
        "children": [
            "mx_eu"
        ],
        "hosts": [
            "mx01.lab",
            "mx02.lab",
            "mx03.lab"
        ],
        "vars": {
            "level": "mx",
            "relay_port": 25
        }
    },
    "mx_eu": {
        "hosts": [
            "mx04.lab"
        ],
        "vars": {
            "level": "eu",
            "zone": "eu-west"
        }
    },
    "newsletter": {
        "hosts": [
            "mx02.lab"
        ],
        "vars": {
            "enabled": true,
            "throttle": 5
        }
    },
    "ungrouped": {
        "hosts": [
            "bastion"
        ]
    }
}
"#;

#[test]
fn one_inventory_in_yaml_ini_and_ansible_inventory_json_resolves_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut listings = Vec::new();
    // the file names do not tell the format: the content does
    for (name, text) in [
        ("fleet-a", SAME_YAML),
        ("fleet-b", SAME_INI),
        ("fleet-c", SAME_JSON),
    ] {
        let path = write(dir.path(), name, text);
        let (code, listing, stderr) = inventory_json(&["-i", &path]);
        assert_eq!(code, 0, "{name}: {stderr}");
        listings.push((name, without_from(listing)));
    }
    let (_, yaml) = &listings[0];
    let hosts: Vec<&String> = yaml["hosts"].as_object().unwrap().keys().collect();
    assert_eq!(
        hosts,
        ["bastion", "mx01.lab", "mx02.lab", "mx03.lab", "mx04.lab"]
    );
    assert_eq!(
        yaml["hosts"]["mx03.lab"]["connection"]["port"]["value"],
        "2222"
    );
    assert_eq!(
        yaml["hosts"]["bastion"]["connection"]["address"]["value"],
        "192.0.2.1"
    );
    assert_eq!(yaml["hosts"]["mx04.lab"]["vars"]["level"], "eu");
    assert_eq!(
        yaml["hosts"]["mx02.lab"]["groups"],
        serde_json::json!(["all", "mx", "newsletter"])
    );
    assert_eq!(yaml["groups"]["ungrouped"], serde_json::json!(["bastion"]));
    let (_, ini) = &listings[1];
    assert_eq!(ini, yaml, "the INI differs from the YAML");
    // ansible-inventory sorts its keys, so `ungrouped` (bastion) comes last there: the
    // hosts come in another order, the rest is the same
    let (_, json) = &listings[2];
    assert_eq!(
        json["groups"]["all"],
        serde_json::json!(["mx01.lab", "mx02.lab", "mx03.lab", "mx04.lab", "bastion"])
    );
    assert_eq!(
        members_sorted(json.clone()),
        members_sorted(yaml.clone()),
        "the JSON differs from the YAML"
    );
}

/// The listing with each group's members sorted.
fn members_sorted(mut listing: serde_json::Value) -> serde_json::Value {
    if let Some(groups) = listing["groups"].as_object_mut() {
        for members in groups.values_mut() {
            if let Some(members) = members.as_array_mut() {
                members.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    listing
}

#[test]
fn a_directory_with_group_vars_and_host_vars_resolves_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("group_vars")).unwrap();
    std::fs::create_dir_all(d.join("host_vars")).unwrap();
    write(d, "10-hosts.ini", "[mx]\nmx1 level=inline\nmx2\n");
    write(d, "20-more.yml", "edge:\n  hosts:\n    edge1:\n");
    write(d, "README.md", "not an inventory\n");
    write(d, "group_vars/all.yml", "relay: gv-all\n");
    write(
        d,
        "group_vars/mx.yml",
        "level: gv-mx\nansible_user: deploy\n",
    );
    write(d, "host_vars/mx1.yml", "level: hv-mx1\n");
    let (code, listing, stderr) = inventory_json(&["-i", d.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let hosts = &listing["hosts"];
    assert_eq!(hosts["mx1"]["vars"]["level"], "hv-mx1");
    assert_eq!(hosts["mx2"]["vars"]["level"], "gv-mx");
    assert_eq!(hosts["edge1"]["vars"]["relay"], "gv-all");
    assert_eq!(hosts["mx2"]["connection"]["user"]["value"], "deploy");
    let from = hosts["mx2"]["connection"]["user"]["from"].as_str().unwrap();
    assert!(
        from.ends_with("group_vars/mx.yml:2:15 (ansible_user)"),
        "{from}"
    );
    // two sources, by -i twice or a comma-separated POSTFLEET_INVENTORY
    let extra = write(d, "../extra.ini", "[mx]\nmx3\n[mx:vars]\nlevel=later\n");
    let (code, listing, stderr) =
        inventory_json(&["-i", d.to_str().unwrap(), "-i", extra.as_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(listing["hosts"]["mx3"]["vars"]["level"], "gv-mx");
    let out = std::process::Command::new(common::postfleet_bin())
        .args(["inventory", "--json", "--ssh-config", "none"])
        .env("POSTFLEET_INVENTORY", format!("{},{extra}", d.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_env, listing);
}

#[test]
fn an_ini_error_shows_file_line_column_with_a_caret_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "hosts", "[mx]\nmx1 a=1 oops\n");
    let (code, err) = stderr_of(&["inventory", "-i", &inv]);
    assert_eq!(code, 4, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!("error: {inv}:2:9: expected NAME=VALUE after the host, got 'oops'")
    );
    assert_eq!(lines[1], "  |", "{err}");
    assert_eq!(lines[2], "2 | mx1 a=1 oops", "{err}");
    assert_eq!(lines[3], "  |         ^", "{err}");
    assert!(
        lines[4].starts_with("  hint: a host line is HOST[:PORT]"),
        "{err}"
    );
    // a script is refused, with what to do instead
    let script = write(
        dir.path(),
        "ec2.py",
        "#!/usr/bin/env python3\nprint('{}')\n",
    );
    let (code, err) = stderr_of(&["inventory", "-i", &script]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("ansible-inventory -i"), "{err}");
}

#[test]
fn a_host_with_ansible_connection_local_is_listed_but_not_worked_on() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "hosts.ini",
        "[mx]\nnowhere1 ansible_host=127.0.0.1 ansible_port=1\n[ctl]\nlocal1 ansible_connection=local\n",
    );
    let (code, listing, stderr) = inventory_json(&["-i", &inv]);
    assert_eq!(code, 0, "{stderr}");
    let shown = &listing["hosts"]["local1"]["connection"]["type"];
    assert_eq!(shown["value"], "local", "{listing}");
    assert_eq!(shown["supported"], false);
    let pb = write(
        dir.path(),
        "site.yml",
        "- hosts: ctl\n  instances:\n    - name: \"-\"\n",
    );
    for command in ["plan", "apply"] {
        let (code, err) = stderr_of(&[command, "-i", &inv, &pb, "--output", "plain"]);
        assert_eq!(code, 4, "{command}: {err}");
        assert!(
            err.contains(&format!(
                "{inv}:4:27: host local1: ansible_connection=local is not supported: postfleet reaches hosts over SSH only"
            )),
            "{command}: {err}"
        );
        assert!(err.contains("4 | local1 ansible_connection=local"), "{err}");
        assert!(err.contains("hint: leave the host out"), "{err}");
    }
    // status selects every host
    let (code, err) = stderr_of(&["status", "-i", &inv, "--limit", "local1"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("ansible_connection=local"), "{err}");
}
