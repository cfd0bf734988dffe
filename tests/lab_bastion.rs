//! Labs with bastions against real hosts (root needed): the mail hosts are on internal
//! networks this machine cannot route to, reached only through the bastions, with OpenSSH
//! driven by the ssh_config file `lab inventory --ssh-config` writes. Each test has its own
//! lab and subnets and takes its lab down itself.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::leftovers::*;
use common::*;

/// `ssh -F CONFIG HOST CMD` with OpenSSH as it is (batch mode: a prompt fails instead of
/// waiting): (exit code, stdout, stderr).
fn openssh(config: &Path, host: &str, cmd: &str) -> (i32, String, String) {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", host, cmd])
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn openssh_ok(config: &Path, host: &str, cmd: &str) -> String {
    let (code, out, err) = openssh(config, host, cmd);
    assert_eq!(code, 0, "ssh -F {} {host} {cmd:?}: {err}", config.display());
    out
}

/// A TCP connect from this machine (the controller's namespace).
fn reachable_from_here(address: Ipv4Addr) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((address, 22)), Duration::from_secs(3)).is_ok()
}

/// A TCP connect to `address:22` from inside lab host `from`.
fn reachable_from(lab: &Lab, from: &str, address: Ipv4Addr) -> bool {
    let probe =
        format!("python3 -c 'import socket; socket.create_connection((\"{address}\", 22), 3)'");
    host_sh(lab, from, &probe).0 == 0
}

/// The address the host's sshd saw the connection come from ($SSH_CONNECTION's first word).
fn client_address(config: &Path, host: &str) -> String {
    let out = openssh_ok(config, host, "echo $SSH_CONNECTION");
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn unreachable_routes() -> String {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "table", "all", "type", "unreachable"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Brings `lab` down with --purge and proves nothing of it is left, its internal networks'
/// routes included.
fn down_leaves_nothing(lab: &Lab, internal: &[&str]) {
    let state_dir = lab.state_dir().to_path_buf();
    let processes = lab_processes(lab.name(), &state_dir);
    assert!(
        processes.len() > 5,
        "too few processes found: {processes:?}"
    );
    lab_ok(lab.name(), &["down", "--purge"]);
    assert_nothing_left(lab.name(), &state_dir, &processes);
    assert!(!state_dir.exists());
    let routes = unreachable_routes();
    for subnet in internal {
        assert!(!routes.contains(subnet), "route left: {routes}");
    }
}

#[test]
#[ignore = "needs root and the lab"]
fn hosts_behind_a_bastion_are_reached_only_through_it() {
    const LAB: &str = "bast";
    const INTERNAL: &str = "10.78.6.0/24";
    lab_ok(LAB, &["down", "--purge"]);
    let up = lab_ok(
        LAB,
        &[
            "up",
            "--hosts",
            "2",
            "--bastion",
            "--subnet",
            "10.78.5.0/24",
            "--internal-subnet",
            INTERNAL,
        ],
    );
    assert!(
        up.contains("2 hosts on 10.78.6.0/24 behind bastion 10.78.5.2"),
        "{up}"
    );
    let lab = Lab::open(LAB).unwrap();
    let bastion = lab.host("bastion").expect("a bastion");
    assert_eq!(bastion.address, Ipv4Addr::new(10, 78, 5, 2));
    assert_eq!(bastion.inner_address, Some(Ipv4Addr::new(10, 78, 6, 1)));
    let hosts = lab.hosts();
    assert_eq!(
        hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["h1", "h2"]
    );
    let h1 = hosts[0].address;
    assert_eq!(h1, Ipv4Addr::new(10, 78, 6, 11));

    // The controller reaches the bastion, not the hosts; the bastion reaches them.
    assert!(reachable_from_here(bastion.address));
    for h in &hosts {
        assert!(
            !reachable_from_here(h.address),
            "{} reachable directly",
            h.name
        );
        assert!(reachable_from(&lab, "bastion", h.address), "{}", h.name);
    }
    assert!(
        unreachable_routes().contains(INTERNAL),
        "{}",
        unreachable_routes()
    );

    // Another lab may not take the internal network's subnet.
    let taken = lab_cmd("bastx", &["up", "--hosts", "1", "--subnet", INTERNAL]);
    assert_eq!(taken.status.code(), Some(4));
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(
        err.contains("overlaps the internal network 10.78.6.0/24"),
        "{err}"
    );

    // The inventory names the jump; the ssh_config file drives OpenSSH through it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    let inventory = lab_ok(
        LAB,
        &["inventory", "--ssh-config", config.to_str().unwrap()],
    );
    assert_eq!(inventory, lab.inventory_yaml("root"));
    for h in &hosts {
        assert!(
            inventory.contains(&format!(
                "{}: {{ ssh_host: {}, lab_release: trixie, ssh_proxy_jump: \"root@10.78.5.2:22\" }}",
                h.name, h.address
            )),
            "{inventory}"
        );
    }
    assert!(!inventory.contains("bastion:"), "{inventory}");
    let (code, _, err) = openssh(&config, "h1", "true");
    assert_eq!(code, 0, "ssh -F {} h1 true: {err}", config.display());
    assert_eq!(openssh_ok(&config, "h2", "hostname"), "h2\n");
    // Plain `-J` by address works with the same file (its blocks match addresses too).
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-o", "BatchMode=yes", "-J", "root@10.78.5.2"])
        .arg(format!("root@{h1}"))
        .arg("hostname")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "h1\n",
        "ssh -J: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // h1's sshd sees the bastion's inner address: the session went through it.
    assert_eq!(client_address(&config, "h1"), "10.78.6.1");
    assert_eq!(
        openssh_ok(&config, "h1", "systemctl is-active postfix"),
        "active\n"
    );
    assert_eq!(openssh_ok(&config, "bastion", "hostname"), "bastion\n");
    let (code, _, _) = host_sh(&lab, "bastion", "pgrep -x master");
    assert_ne!(code, 0, "Postfix runs on the bastion");

    // The controller side reads the same file: h1 resolves to its address behind `bastion`.
    let local = postfleet_ssh::config::Local {
        user: "root".into(),
        home: dir.path().to_path_buf(),
    };
    let sources = [postfleet_ssh::config::Source {
        path: config.clone(),
        system: false,
        required: true,
    }];
    let resolved = postfleet_ssh::config::resolve("h1", &sources, &local).unwrap();
    assert_eq!(resolved.hostname.unwrap().value, h1.to_string());
    assert_eq!(resolved.proxy_jump.unwrap().value, "bastion");
    assert_eq!(resolved.strict_host_key_checking.unwrap().value, "yes");

    // With --user deploy the file logs in to the hosts as deploy (the bastion stays root).
    let deploy_config = dir.path().join("ssh_config_deploy");
    lab_ok(
        LAB,
        &[
            "inventory",
            "--user",
            "deploy",
            "--ssh-config",
            deploy_config.to_str().unwrap(),
        ],
    );
    assert_eq!(
        openssh_ok(&deploy_config, "h1", "id -un; sudo -n id -un"),
        "deploy\nroot\n"
    );

    // `lab ssh` goes through the bastion too, as root and as deploy.
    let out = Command::new(postfleet_bin())
        .args([
            "lab",
            "--lab",
            LAB,
            "ssh",
            "-l",
            "deploy",
            "h2",
            "sudo -n id -un",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A reset host comes back behind the bastion with new host keys the file still trusts;
    // a reset bastion too.
    let known_before = std::fs::read_to_string(lab.known_hosts_path()).unwrap();
    reset_hosts(&lab, &["h1", "bastion"]);
    assert_ne!(
        std::fs::read_to_string(lab.known_hosts_path()).unwrap(),
        known_before
    );
    assert_eq!(openssh_ok(&config, "h1", "hostname"), "h1\n");
    assert!(!reachable_from_here(h1));

    // A direct host beside them: on the lab's subnet, no jump in the inventory or config.
    lab_ok(LAB, &["add", "--direct", "--mode", "plain"]);
    let lab = Lab::open(LAB).unwrap();
    let h3 = lab.host("h3").unwrap();
    assert_eq!((h3.address, h3.network), (Ipv4Addr::new(10, 78, 5, 13), 0));
    assert!(reachable_from_here(h3.address));
    let inventory = lab_ok(
        LAB,
        &["inventory", "--ssh-config", config.to_str().unwrap()],
    );
    assert!(
        inventory.contains("h3: { ssh_host: 10.78.5.13, lab_release: trixie }"),
        "{inventory}"
    );
    assert_eq!(client_address(&config, "h3"), "10.78.5.1");

    // status shows the topology.
    let status: serde_json::Value =
        serde_json::from_str(&lab_ok(LAB, &["status", "--json"])).unwrap();
    assert_eq!(status["bastions"][0]["name"], "bastion");
    assert_eq!(status["bastions"][0]["inner_address"], "10.78.6.1");
    assert_eq!(status["internal_subnets"][0], INTERNAL);
    assert_eq!(status["hosts"][0]["proxy_jump"], "root@10.78.5.2:22");

    down_leaves_nothing(&lab, &[INTERNAL]);
}

#[test]
#[ignore = "needs root and the lab"]
fn two_hops_each_bastion_reaches_only_the_next() {
    const LAB: &str = "bast2";
    const INTERNAL: [&str; 2] = ["10.78.8.0/24", "10.78.9.0/24"];
    lab_ok(LAB, &["down", "--purge"]);
    lab_ok(
        LAB,
        &[
            "up",
            "--hosts",
            "1",
            "--bastion",
            "2",
            "--mode",
            "plain",
            "--subnet",
            "10.78.7.0/24",
            "--internal-subnet",
            INTERNAL[0],
            "--internal-subnet",
            INTERNAL[1],
        ],
    );
    let lab = Lab::open(LAB).unwrap();
    let bastions = lab.bastions();
    assert_eq!(
        bastions
            .iter()
            .map(|b| (b.name.as_str(), b.address.to_string()))
            .collect::<Vec<_>>(),
        [
            ("bastion", "10.78.7.2".into()),
            ("bastion2", "10.78.8.2".into())
        ]
    );
    let h1 = lab.host("h1").unwrap().address;
    assert_eq!(h1, Ipv4Addr::new(10, 78, 9, 11));

    // Only the first bastion is reachable from here; each reaches only the next hop.
    assert!(reachable_from_here(bastions[0].address));
    assert!(!reachable_from_here(bastions[1].address));
    assert!(!reachable_from_here(h1));
    assert!(reachable_from(&lab, "bastion", bastions[1].address));
    assert!(!reachable_from(&lab, "bastion", h1));
    assert!(reachable_from(&lab, "bastion2", h1));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    let inventory = lab_ok(
        LAB,
        &["inventory", "--ssh-config", config.to_str().unwrap()],
    );
    assert!(
        inventory.contains("ssh_proxy_jump: \"root@10.78.7.2:22,root@10.78.8.2:22\""),
        "{inventory}"
    );
    let (code, _, err) = openssh(&config, "h1", "true");
    assert_eq!(code, 0, "ssh -F {} h1 true: {err}", config.display());
    assert_eq!(client_address(&config, "h1"), "10.78.9.1");
    assert_eq!(client_address(&config, "bastion2"), "10.78.8.1");
    assert_eq!(
        openssh_ok(&config, "h1", "postfix status 2>&1; hostname")
            .lines()
            .last(),
        Some("h1")
    );

    // Mail from behind both bastions reaches the sink, as from the first bastion's address.
    let gateway = lab.gateway();
    openssh_ok(
        &config,
        "h1",
        &postfleet_shell::Line::new()
            .text("postconf -e")
            .word(format!("relayhost = [{gateway}]:2527"))
            .text(
                "&& postfix reload && \
                 printf 'Subject: via-bastions\\n\\nhello\\n' | sendmail -f from@h1.test to@far.test",
            )
            .build(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let message = loop {
        let found = lab
            .sink_messages()
            .into_iter()
            .find(|m| m.header("Subject").as_deref() == Some("via-bastions"));
        if let Some(m) = found {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message in the sink"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (message.port, message.helo.as_str()),
        (2527, "h1.bast2.test")
    );
    assert!(message.peer.starts_with("10.78.7.2:"), "{}", message.peer);

    down_leaves_nothing(&lab, &INTERNAL);
}

#[test]
#[ignore = "needs root and the lab"]
fn bad_bastion_requests_get_one_clear_message() {
    for (args, wanted) in [
        (vec!["--bastion", "0"], "1 or more hops"),
        (vec!["--bastion", "9"], "1 to 4 hops"),
        (
            vec!["--bastion", "2", "--internal-subnet", "10.78.11.0/24"],
            "once per bastion hop (2)",
        ),
        (
            vec![
                "--bastion",
                "--subnet",
                "10.78.10.0/24",
                "--internal-subnet",
                "10.78.10.0/25",
            ],
            "overlap",
        ),
    ] {
        let mut all = vec!["up", "--hosts", "1"];
        all.extend(args.iter().copied());
        let out = lab_cmd("bastx", &all);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
    assert!(Lab::open("bastx").is_err(), "a refused up left a lab");
}

#[test]
#[ignore = "needs root and the lab"]
fn a_killed_bastion_up_is_cleaned_by_down() {
    const LAB: &str = "bastk";
    const INTERNAL: &str = "10.78.13.0/24";
    lab_ok(LAB, &["down", "--purge"]);
    let mut up = Command::new(postfleet_bin())
        .args([
            "lab",
            "--lab",
            LAB,
            "up",
            "--hosts",
            "2",
            "--bastion",
            "--subnet",
            "10.78.12.0/24",
            "--internal-subnet",
            INTERNAL,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the last host's network exists: the internal network and its route do.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !Path::new(&format!("/run/netns/pf{LAB}-h2")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "lab up did not get to h2"
        );
        assert!(up.try_wait().unwrap().is_none(), "lab up ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(unreachable_routes().contains(INTERNAL));
    let again = lab_cmd(LAB, &["up", "--hosts", "1", "--bastion"]);
    assert_eq!(again.status.code(), Some(4));

    let state_dir = postfleet_lab::labs_dir().join(LAB);
    let processes = lab_processes(LAB, &state_dir);
    lab_ok(LAB, &["down", "--purge"]);
    assert_nothing_left(LAB, &state_dir, &processes);
    assert!(
        !unreachable_routes().contains(INTERNAL),
        "{}",
        unreachable_routes()
    );
}
