//! postfleet's reading of ssh_config against OpenSSH's own: `ssh -G` (which prints the
//! configuration ssh would use, without connecting) on every config in `tests/ssh_config/`,
//! for every host its `# hosts:` line names. `@DIR@` in a config stands for that folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use postfleet_ssh::config::{resolve, HostConfig, Local, Source};

/// What `ssh -G` says, key → values (a key may repeat, e.g. identityfile).
fn ssh_g(config: &Path, host: &str) -> Vec<(String, String)> {
    let out = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(host)
        .output()
        .expect("ssh (openssh-client) runs");
    assert!(
        out.status.success(),
        "ssh -G {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

fn values<'a>(said: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    said.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(said: &'a [(String, String)], key: &str) -> &'a str {
    values(said, key).first().copied().unwrap_or("")
}

fn compare(name: &str, host: &str, ours: &HostConfig, said: &[(String, String)], local: &Local) {
    let ctx = format!("{name}, host {host}");
    let home = local.home.to_string_lossy().into_owned();
    let tilde = |s: &str| s.replacen('~', &home, 1);
    let hostname = ours
        .hostname
        .as_ref()
        .map_or(host.to_string(), |h| h.value.clone());
    assert_eq!(
        one(said, "hostname"),
        hostname.to_lowercase(),
        "{ctx}: hostname"
    );
    let user = ours
        .user
        .as_ref()
        .map_or(local.user.clone(), |u| u.value.clone());
    assert_eq!(one(said, "user"), user, "{ctx}: user");
    let port = ours.port.as_ref().map_or(22, |p| p.value);
    assert_eq!(one(said, "port"), port.to_string(), "{ctx}: port");
    if !ours.identity_files.is_empty() {
        let mine: Vec<&str> = ours
            .identity_files
            .iter()
            .map(|f| f.value.as_str())
            .collect();
        assert_eq!(values(said, "identityfile"), mine, "{ctx}: identityfile");
    }
    let mine: Vec<&str> = ours
        .certificate_files
        .iter()
        .map(|f| f.value.as_str())
        .collect();
    assert_eq!(
        values(said, "certificatefile"),
        mine,
        "{ctx}: certificatefile"
    );
    if let Some(v) = &ours.identities_only {
        let word = if v.value { "yes" } else { "no" };
        assert_eq!(one(said, "identitiesonly"), word, "{ctx}: identitiesonly");
    }
    if let Some(v) = &ours.strict_host_key_checking {
        let word = match v.value.as_str() {
            "no" | "off" => "false",
            "yes" => "true",
            other => other,
        };
        assert_eq!(
            one(said, "stricthostkeychecking"),
            word,
            "{ctx}: stricthostkeychecking"
        );
    }
    let proxy = ours.proxy_jump.as_ref().map(|p| p.value.as_str());
    let theirs = values(said, "proxyjump").first().copied();
    assert_eq!(
        theirs.filter(|p| *p != "none"),
        proxy.filter(|p| *p != "none"),
        "{ctx}: proxyjump"
    );
    if let Some(v) = &ours.connect_timeout {
        assert_eq!(
            one(said, "connecttimeout"),
            v.value.to_string(),
            "{ctx}: connecttimeout"
        );
    }
    if let Some(v) = &ours.server_alive_interval {
        assert_eq!(
            one(said, "serveraliveinterval"),
            v.value.to_string(),
            "{ctx}: serveraliveinterval"
        );
    }
    if let Some(v) = &ours.user_known_hosts_files {
        let mine: Vec<String> = v.value.iter().map(|f| tilde(f)).collect();
        assert_eq!(
            one(said, "userknownhostsfile"),
            mine.join(" "),
            "{ctx}: userknownhostsfile"
        );
    }
    if let Some(v) = &ours.global_known_hosts_files {
        let mine: Vec<String> = v.value.iter().map(|f| tilde(f)).collect();
        assert_eq!(
            one(said, "globalknownhostsfile"),
            mine.join(" "),
            "{ctx}: globalknownhostsfile"
        );
    }
}

#[test]
fn every_config_resolves_as_ssh_g_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_config");
    let local = Local {
        user: String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string(),
        home: PathBuf::from(std::env::var("HOME").unwrap()),
    };
    let work = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("@DIR@", &dir.to_string_lossy());
        let config = work.path().join(&name);
        std::fs::write(&config, &text).unwrap();
        let hosts = text
            .lines()
            .find_map(|l| l.strip_prefix("# hosts:"))
            .unwrap_or_else(|| panic!("{name}: no '# hosts:' line"));
        for host in hosts.split_whitespace() {
            let source = Source {
                path: config.clone(),
                system: false,
                required: true,
            };
            let ours = resolve(host, &[source], &local).unwrap_or_else(|e| panic!("{name}: {e}"));
            compare(&name, host, &ours, &ssh_g(&config, host), &local);
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} host/config pairs compared");
}
