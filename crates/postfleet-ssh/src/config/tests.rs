use super::*;

fn local() -> Local {
    Local {
        user: "alice".into(),
        home: PathBuf::from("/home/alice"),
    }
}

/// Resolves `host` through one user file holding `text`.
fn resolve_text(text: &str, host: &str) -> Result<HostConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, text).unwrap();
    resolve(
        host,
        &[Source {
            path,
            system: false,
            required: true,
        }],
        &local(),
    )
}

#[test]
fn the_first_value_obtained_wins_and_identity_files_add_up() {
    let text = "Host mx*\n  User deploy\n  IdentityFile ~/.ssh/a\nHost *\n  User nobody\n  \
                IdentityFile ~/.ssh/b\n  Port 2222\n";
    let c = resolve_text(text, "mx1").unwrap();
    assert_eq!(c.user.as_ref().unwrap().value, "deploy");
    assert_eq!(c.user.unwrap().origin.line, 2);
    assert_eq!(c.port.unwrap().value, 2222);
    let keys: Vec<&str> = c.identity_files.iter().map(|f| f.value.as_str()).collect();
    assert_eq!(keys, ["~/.ssh/a", "~/.ssh/b"]);
    assert_eq!(
        resolve_text(text, "edge").unwrap().user.unwrap().value,
        "nobody"
    );
}

#[test]
fn host_patterns_negate_and_case_counts() {
    let text = "Host mx* !mx9\n  User a\n";
    assert!(resolve_text(text, "mx1").unwrap().user.is_some());
    assert!(resolve_text(text, "MX1").unwrap().user.is_none());
    assert!(resolve_text(text, "mx9").unwrap().user.is_none());
    assert!(resolve_text(text, "mx1.example.org")
        .unwrap()
        .user
        .is_some());
    assert!(glob_matches("m?1*", "mx1.x"));
    assert!(!glob_matches("m?1", "mx12"));
}

#[test]
fn match_sees_what_is_set_so_far() {
    let text = "Host mx1\n  HostName 10.0.0.1\n  User deploy\n\
                Match host 10.0.0.* user deploy\n  Port 2200\n\
                Match originalhost mx1 !localuser bob\n  ConnectTimeout 3\n";
    let c = resolve_text(text, "mx1").unwrap();
    assert_eq!(c.port.unwrap().value, 2200);
    assert_eq!(c.connect_timeout.unwrap().value, 3);
}

#[test]
fn what_is_not_supported_is_refused_with_its_line() {
    let err = resolve_text("Host *\n  ProxyCommand nc %h %p\n", "mx1").unwrap_err();
    assert_eq!(err.origin.line, 2);
    assert!(err.message.contains("ProxyJump"), "{err}");
    let err = resolve_text("Match exec \"true\"\n  User x\n", "mx1").unwrap_err();
    assert_eq!(err.origin.line, 1);
    assert!(
        err.to_string().contains("Match exec is not supported"),
        "{err}"
    );
    // ...but only where it applies to the host, as ssh reads it
    assert!(resolve_text("Host other\n  ProxyCommand nc %h %p\n", "mx1").is_ok());
}

#[test]
fn includes_are_read_in_place_with_globs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/10-mx"),
        "Host mx*\n  User from-include\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("conf.d/20-all"), "Port 2022\n").unwrap();
    let main = dir.path().join("config");
    std::fs::write(
        &main,
        format!(
            "Include {}/conf.d/*\nHost *\n  User later\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let c = resolve(
        "mx1",
        &[Source {
            path: main,
            system: false,
            required: true,
        }],
        &local(),
    )
    .unwrap();
    assert_eq!(c.user.as_ref().unwrap().value, "from-include");
    assert!(c.user.unwrap().origin.file.ends_with("conf.d/10-mx"));
    assert_eq!(c.port.unwrap().value, 2022);
}

#[test]
fn tokens_expand_in_paths_and_hostnames() {
    let l = local();
    let tokens = Tokens {
        hostname: "10.0.0.1",
        original: "mx1",
        user: "deploy",
        port: 22,
        local: &l,
    };
    assert_eq!(
        expand("~/.ssh/%n-%r@%h:%p_%u%%", &tokens).unwrap(),
        "/home/alice/.ssh/mx1-deploy@10.0.0.1:22_alice%"
    );
    assert!(expand("%C", &tokens).is_err());
    let c = resolve_text("Host *\n  HostName %h.internal\n", "mx1").unwrap();
    assert_eq!(c.hostname.unwrap().value, "mx1.internal");
}

#[test]
fn keyword_equals_and_quotes_are_read_like_ssh() {
    let c = resolve_text(
        "Host=mx1\nIdentityFile=\"/k/with space\" # comment\n",
        "mx1",
    )
    .unwrap();
    assert_eq!(c.identity_files[0].value, "/k/with space");
    assert!(resolve_text("User \"open\n", "mx1").is_err());
}
