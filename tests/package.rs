//! The Debian package and its units, without a lab: the unit files say what the README
//! promises, their ExecStart expanded as systemd does (with the shipped example env file,
//! a minimal one and none) is a command line the binary runs, every POSTFLEET_OPTIONS
//! example parses, `systemd-analyze verify` accepts the units (when it is installed), and
//! `scripts/build-deb` makes a .deb holding every promised path (when cargo-deb is installed:
//! `scripts/build-deb --install-tool`, which scripts/test runs).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SERVICE: &str = include_str!("../packaging/systemd/postfleet-apply@.service");
const TIMER: &str = include_str!("../packaging/systemd/postfleet-apply@.timer");
const ENV_EXAMPLE: &str = include_str!("../packaging/fleet.env");

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postfleet"))
}

/// A unit file's settings: (section, key) to its values in file order (keys may repeat).
type Unit = BTreeMap<(String, String), Vec<String>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "no continued lines here: {line}");
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        unit.entry((section.clone(), key.trim().to_string()))
            .or_default()
            .push(value.trim().to_string());
    }
    unit
}

/// The one value of `key` in `section`.
fn one<'u>(unit: &'u Unit, section: &str, key: &str) -> &'u str {
    let values = unit
        .get(&(section.to_string(), key.to_string()))
        .unwrap_or_else(|| panic!("[{section}] {key}= missing"));
    assert_eq!(values.len(), 1, "[{section}] {key}= once: {values:?}");
    &values[0]
}

/// Words split at whitespace; quoting is not used in these files (systemd would honour it).
fn words(text: &str) -> Vec<String> {
    assert!(
        !text.contains(['"', '\'', '\\']),
        "no quoting expected: {text}"
    );
    text.split_whitespace().map(String::from).collect()
}

/// KEY=VALUE lines of an EnvironmentFile (comments and blank lines skipped).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            assert!(!v.contains(['"', '\'', '\\']), "no quoting expected: {l}");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// The environment the service's ExecStart sees: Environment= first, the env file over it.
fn service_env(unit: &Unit, env_text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for assignment in words(one(unit, "Service", "Environment")) {
        let (k, v) = assignment.split_once('=').expect("VAR=value");
        env.insert(k.to_string(), v.to_string());
    }
    env.extend(env_file(env_text));
    env
}

/// ExecStart as systemd expands it: `${VAR}` is one argument (empty if unset), a word
/// `$VAR` is the value split at whitespace (no argument if empty or unset).
fn expand(exec: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut argv = Vec::new();
    for word in words(exec) {
        if let Some(name) = word.strip_prefix('$').filter(|n| !n.starts_with('{')) {
            argv.extend(words(env.get(name).map_or("", String::as_str)));
            continue;
        }
        let mut out = String::new();
        let mut rest = word.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing brace") + start;
            let name = &rest[start + 2..end];
            out.push_str(env.get(name).map_or("", String::as_str));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        argv.push(out);
    }
    argv
}

#[test]
fn the_service_is_one_apply_as_the_postfleet_user_in_its_configuration_directory() {
    let unit = parse_unit(SERVICE);
    for (key, value) in [
        ("Type", "oneshot"),
        ("User", "postfleet"),
        ("Group", "postfleet"),
        ("WorkingDirectory", "/etc/postfleet/%i"),
        ("EnvironmentFile", "/etc/postfleet/%i/env"),
        ("StateDirectory", "postfleet-controller"),
        ("SuccessExitStatus", "5"),
        ("StandardOutput", "journal"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("KillSignal", "SIGINT"),
    ] {
        assert_eq!(one(&unit, "Service", key), value, "{key}");
    }
    // The postfleet user's home is not the directory postfleet's root scripts keep their
    // state in on a managed host (this machine may be one).
    let home = format!("/var/lib/{}", one(&unit, "Service", "StateDirectory"));
    assert_ne!(home, postfleet_core::scripts::STATE_DIR);
    let postinst = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian/postinst"),
    )
    .unwrap();
    assert!(postinst.contains(&format!("--home {home} ")), "{postinst}");
    // Outbound TCP stays possible.
    let families = words(one(&unit, "Service", "RestrictAddressFamilies"));
    for family in ["AF_INET", "AF_INET6"] {
        assert!(families.iter().any(|f| f == family), "{families:?}");
    }
    assert!(!unit.contains_key(&("Service".into(), "PrivateNetwork".into())));
    // No [Install]: the template is never enabled itself, its timer is.
    assert!(!unit.keys().any(|(section, _)| section == "Install"));
    let exec = words(one(&unit, "Service", "ExecStart"));
    assert_eq!(
        exec,
        [
            "/usr/bin/postfleet",
            "apply",
            "--output",
            "json",
            "--detailed-exitcode",
            "-i",
            "${POSTFLEET_INVENTORY}",
            "${POSTFLEET_PLAYBOOK}",
            "$POSTFLEET_OPTIONS",
        ]
    );
    // Defaults that make a minimal env file (or an empty one) work.
    let env = service_env(&unit, "");
    assert_eq!(env["POSTFLEET_INVENTORY"], "inventory.yml");
    assert_eq!(env["POSTFLEET_PLAYBOOK"], "playbook.yml");
    assert_eq!(env["POSTFLEET_OPTIONS"], "");
}

#[test]
fn the_timer_runs_its_service_hourly_once_enabled() {
    let unit = parse_unit(TIMER);
    for (section, key, value) in [
        ("Timer", "OnCalendar", "hourly"),
        ("Timer", "Persistent", "true"),
        ("Timer", "Unit", "postfleet-apply@%i.service"),
        ("Install", "WantedBy", "timers.target"),
    ] {
        assert_eq!(one(&unit, section, key), value, "{key}");
    }
    let delay = one(&unit, "Timer", "RandomizedDelaySec");
    assert!(delay.ends_with("min"), "{delay}");
}

/// Runs `argv` (argv[0] is /usr/bin/postfleet: the binary under test instead) in `dir`, with
/// `home` as HOME (the lock's place), no agent, nothing on stdin.
fn run_in(dir: &Path, home: &Path, argv: &[String]) -> Output {
    assert_eq!(argv[0], "/usr/bin/postfleet");
    Command::new(bin())
        .args(&argv[1..])
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("POSTFLEET_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .expect("postfleet runs")
}

#[test]
fn exec_start_with_the_example_a_minimal_or_an_empty_env_file_is_a_real_run() {
    let unit = parse_unit(SERVICE);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // A host on a loopback port nothing listens on: the run gets as far as connecting,
    // finds it unreachable (exit 3), and prints its JSON lines.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = dir.path().join("fleet");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("inventory.yml"),
        format!(
            "all:\n  children:\n    mx:\n      hosts:\n        mx01: {{ ssh_host: 127.0.0.1, ssh_port: {port} }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("playbook.yml"),
        "- hosts: mx\n  instances:\n    - name: \"-\"\n      main_cf: { myhostname: mx01 }\n",
    )
    .unwrap();
    let minimal = "POSTFLEET_INVENTORY=inventory.yml\nPOSTFLEET_PLAYBOOK=playbook.yml\n";
    for (name, env_text) in [
        ("the example", ENV_EXAMPLE),
        ("a minimal one", minimal),
        ("an empty one", ""),
    ] {
        let argv = expand(
            one(&unit, "Service", "ExecStart"),
            &service_env(&unit, env_text),
        );
        let out = run_in(&config, &home, &argv);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{name}: {argv:?}\n{stdout}\n{stderr}"
        );
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
            .collect();
        let last = lines.last().unwrap_or_else(|| panic!("{name}: no output"));
        assert_eq!(last["type"], "summary", "{name}: {stdout}");
        assert!(stdout.contains("mx01"), "{name}: {stdout}");
    }
    // The lock went where the package documents it (the postfleet user's home).
    assert!(home.join(".local/state/postfleet/locks").is_dir());
}

/// Every POSTFLEET_OPTIONS of the example, active or commented out, is options `postfleet
/// apply` accepts (values checked too: clap parses them before it acts on --help).
#[test]
fn every_postfleet_options_example_parses() {
    let examples: Vec<&str> = ENV_EXAMPLE
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .strip_prefix("POSTFLEET_OPTIONS=")
                .map(str::trim)
        })
        .collect();
    assert!(examples.len() >= 3, "{examples:?}");
    for options in examples {
        let words = words(options);
        assert!(
            !words.iter().any(|w| w == "--accept-new"),
            "a scheduled run never learns host keys: {options}"
        );
        let out = Command::new(bin())
            .arg("apply")
            .args(&words)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn systemd_analyze_verifies_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("postfleet-apply@.service");
    let timer = dir.path().join("postfleet-apply@.timer");
    std::fs::write(
        &service,
        SERVICE.replace("/usr/bin/postfleet", bin().to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(&timer, TIMER).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&service)
        .arg(&timer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys are only warned about: any word from verify is a failure here.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn the_deb_holds_every_promised_path() {
    let Some(deb) = common::build_deb() else {
        eprintln!(
            "skipped: cargo-deb is not installed (scripts/build-deb --install-tool installs it)"
        );
        return;
    };

    let dpkg_deb = |args: &[&str]| {
        let out = Command::new("dpkg-deb")
            .args(args)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(out.status.success(), "dpkg-deb {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listing = dpkg_deb(&["-c"]);
    // `-rwxr-xr-x 0/0 SIZE DATE TIME ./PATH`: mode, owner and path of each file.
    let files: BTreeMap<String, (String, String)> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_string();
            (path, (fields[0].to_string(), fields[1].to_string()))
        })
        .collect();
    for path in [
        "/usr/bin/postfleet",
        "/usr/share/man/man1/postfleet.1.gz",
        "/usr/share/bash-completion/completions/postfleet",
        "/usr/share/zsh/vendor-completions/_postfleet",
        "/usr/share/fish/vendor_completions.d/postfleet.fish",
        "/usr/lib/systemd/system/postfleet-apply@.service",
        "/usr/lib/systemd/system/postfleet-apply@.timer",
        "/usr/share/doc/postfleet/examples/fleet.env",
        "/usr/share/doc/postfleet/examples/newsletter/playbook.yml",
        "/usr/share/doc/postfleet/examples/newsletter/inventory.yml",
        "/usr/share/doc/postfleet/copyright",
    ] {
        let (mode, owner) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"));
        assert_eq!(owner, "0/0", "{path}");
        let expected = if path == "/usr/bin/postfleet" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, expected, "{path}");
    }
    // Nothing in /etc: no conffile to merge, no unit enabled by the package.
    assert!(!files.keys().any(|p| p.starts_with("/etc/")), "{listing}");

    // Depends: what the binary links, and adduser for the postinst. Not openssh-client:
    // postfleet has its own SSH client.
    let field = |name: &str| {
        let out = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let deps = field("Depends");
    assert!(deps.contains("libc6"), "{deps}");
    assert!(deps.contains("adduser"), "{deps}");
    assert!(!deps.contains("openssh"), "{deps}");
    assert_eq!(field("Package"), "postfleet");

    // The maintainer scripts, and what the package carries is the repository's.
    let info = dpkg_deb(&["-I"]);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "{script}:\n{info}");
    }
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let packaged = |path: &str| std::fs::read_to_string(root.path().join(path)).unwrap();
    assert_eq!(
        packaged("usr/lib/systemd/system/postfleet-apply@.service"),
        SERVICE
    );
    assert_eq!(
        packaged("usr/lib/systemd/system/postfleet-apply@.timer"),
        TIMER
    );
    assert_eq!(
        packaged("usr/share/doc/postfleet/examples/fleet.env"),
        ENV_EXAMPLE
    );
    let control = root.path().join("control");
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&control)
        .output()
        .unwrap();
    assert!(out.status.success());
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(control.join(script)).unwrap();
        let ours = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("packaging/debian")
                .join(script),
        )
        .unwrap();
        assert_eq!(text, ours, "{script}");
        let syntax = Command::new("sh")
            .arg("-n")
            .arg(control.join(script))
            .status()
            .unwrap();
        assert!(syntax.success(), "{script}: sh -n");
    }
    // The packaged binary runs, and the man page is the binary's own.
    let version = Command::new(root.path().join("usr/bin/postfleet"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("postfleet "),
        "{version:?}"
    );
    let man = Command::new("gzip")
        .args(["-dc"])
        .arg(root.path().join("usr/share/man/man1/postfleet.1.gz"))
        .output()
        .unwrap();
    let expected = Command::new(bin()).arg("man").output().unwrap();
    assert_eq!(man.stdout, expected.stdout);
}
