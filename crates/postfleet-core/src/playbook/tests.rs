use std::path::{Path, PathBuf};

use super::*;
use crate::error::InputError;

const FILE: &str = "/srv/pb/site.yml";

fn load_text(text: &str) -> Result<Playbook, InputError> {
    parse(text, Path::new(FILE))
}

fn ok(text: &str) -> Playbook {
    load_text(text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    load_text(text)
        .expect_err("the playbook should be rejected")
        .to_string()
}

/// A playbook directory with files (`templates/x.j2`, `site.yml`...).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const MINIMAL: &str = "- hosts: mx\n  instances:\n    - name: \"-\"\n";

#[test]
fn minimal_play() {
    let pb = ok(MINIMAL);
    assert_eq!(pb.plays.len(), 1);
    let play = &pb.plays[0];
    assert_eq!(play.hosts.as_str(), "mx");
    assert_eq!(play.pos.line, 1);
    let instance = &play.instances[0];
    assert!(instance.name.is_default());
    assert_eq!(instance.state, None);
    assert_eq!(instance.enabled, None);
    assert_eq!((instance.pos.line, instance.pos.column), (3, 13));
}

#[test]
fn instance_names() {
    let pb =
        ok("- hosts: all\n  instances:\n    - name: default\n    - name: postfix-newsletter\n");
    assert_eq!(pb.plays[0].instances[0].name.as_str(), "-");
    assert_eq!(pb.plays[0].instances[1].name.as_str(), "postfix-newsletter");
}

#[test]
fn unknown_key_in_a_play() {
    assert_eq!(
        err("- hosts: mx\n  tasks: []\n  instances: []\n"),
        "/srv/pb/site.yml:2:3: unknown field `tasks`, expected one of name, hosts, defaults, vars, instances, serial, max_fail_percentage"
    );
}

#[test]
fn unknown_key_in_an_instance_master_entry_and_table() {
    let message = err("- hosts: mx\n  instances:\n    - name: \"-\"\n      main_cfg: {}\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:4:7: unknown field `main_cfg`"),
        "{message}"
    );
    let message = err(
        "- hosts: mx\n  instances:\n    - name: \"-\"\n      master_cf:\n        - service: x\n          type: unix\n          command: smtp\n          option: {a: b}\n",
    );
    assert!(
        message.starts_with("/srv/pb/site.yml:8:11: unknown field `option`"),
        "{message}"
    );
    let message = err(
        "- hosts: mx\n  instances:\n    - name: \"-\"\n      tables:\n        - path: t\n          content: x\n          owner: root\n",
    );
    assert!(
        message.starts_with("/srv/pb/site.yml:7:11: unknown field `owner`"),
        "{message}"
    );
    let message = err(
        "- hosts: mx\n  instances:\n    - name: \"-\"\n      files:\n        - path: t\n          content: x\n          type: hash\n",
    );
    assert!(
        message.starts_with("/srv/pb/site.yml:7:11: unknown field `type`"),
        "{message}"
    );
}

#[test]
fn wrong_types() {
    let message = err("- hosts: mx\n  instances:\n    - name: \"-\"\n      enabled: maybe\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:4:16: expected true or false"),
        "{message}"
    );
    let message = err("- hosts: mx\n  instances:\n    - name: \"-\"\n      state: gone\n");
    assert!(
        message.starts_with(
            "/srv/pb/site.yml:4:14: unknown variant `gone`, expected one of present, absent"
        ),
        "{message}"
    );
    let message = err(
        "- hosts: mx\n  instances:\n    - name: \"-\"\n      main_cf:\n        relayhost: {a: 1}\n",
    );
    assert!(
        message.starts_with("/srv/pb/site.yml:5:20: invalid type: map, expected a string, number, boolean, list or null"),
        "{message}"
    );
    let message = err("- hosts: mx\n  instances: {name: x}\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:2:14: expected a list"),
        "{message}"
    );
}

#[test]
fn bad_instance_name() {
    assert_eq!(
        err("- hosts: mx\n  instances:\n    - name: newsletter\n"),
        "/srv/pb/site.yml:3:13: instance name 'newsletter' must be '-' (the default instance) or start with 'postfix-'\n  \
         hint: use \"-\" (or default) for the default instance, or postfix-NAME"
    );
    let message = err("- hosts: mx\n  instances:\n    - name: postfix-News\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:3:13: instance name 'postfix-News'"),
        "{message}"
    );
}

#[test]
fn duplicate_instance_in_a_play() {
    let message = err("- hosts: mx\n  instances:\n    - name: \"-\"\n    - name: default\n");
    assert!(
        message.starts_with(
            "/srv/pb/site.yml:4:13: instance '-' is declared twice in this play (first at line 3)"
        ),
        "{message}"
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let message = err("- hosts: mx\n  instances:\n    - name: \"-\"\n      main_cf:\n        a: 1\n        a: 2\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:6:9: duplicate key 'a'"),
        "{message}"
    );
}

#[test]
fn empty_or_not_a_list() {
    assert!(err("").starts_with("/srv/pb/site.yml:1:1: the playbook has no plays"));
    assert!(err("hosts: mx\n").starts_with("/srv/pb/site.yml:1:1:"));
    let message = err("- hosts: mx\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:1:3: this play has no `instances:`"),
        "{message}"
    );
    let message = err("- instances: []\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:1:3: missing field `hosts`"),
        "{message}"
    );
}

#[test]
fn yaml_syntax_errors_point_at_the_line() {
    let e =
        load_text("- hosts: mx\n  instances:\n    - name: \"-\"\n     main_cf: {}\n").unwrap_err();
    assert_eq!(e.pos.as_ref().map(|p| (p.line, p.column)), Some((4, 6)));
    assert!(e.hint.unwrap().starts_with("check the indentation"));
}

#[test]
fn bad_host_pattern() {
    let message = err("- hosts: \"mx,,relay\"\n  instances: []\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:1:10: host pattern 'mx,,relay' has an empty part"),
        "{message}"
    );
}

fn instance_yaml(body: &str) -> String {
    let mut text = String::from("- hosts: mx\n  instances:\n    - name: postfix-nl\n");
    for line in body.lines() {
        text.push_str("      ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn main_cf_values_as_text() {
    let pb = ok(&instance_yaml(
        "main_cf:\n  a: text\n  b: 10\n  c: yes\n  d: false\n  e: [x, 2, \"{{ y }}\"]\n  f: null\n  g: \"\"\n  h: 0644\n  i: 1.5",
    ));
    let params = &pb.plays[0].instances[0].main_cf;
    let text = |p: &ParamSpec| match &p.value {
        Some(ParamText::One(t)) => t.raw.clone(),
        Some(ParamText::List(items)) => items
            .iter()
            .map(|t| t.raw.clone())
            .collect::<Vec<_>>()
            .join("|"),
        None => "<removed>".into(),
    };
    let all: Vec<(String, String)> = params.iter().map(|p| (p.name.clone(), text(p))).collect();
    let expected = [
        ("a", "text"),
        ("b", "10"),
        ("c", "yes"),
        ("d", "no"),
        ("e", "x|2|{{ y }}"),
        ("f", "<removed>"),
        ("g", ""),
        ("h", "0644"),
        ("i", "1.5"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(all, expected);
    // Only the templated list item is compiled.
    match &params[4].value {
        Some(ParamText::List(items)) => {
            assert!(items[0].template.is_none());
            assert!(items[2].template.is_some());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parameter_names_and_line_breaks() {
    let message = err(&instance_yaml("main_cf:\n  smtp-limit: 1"));
    assert!(
        message.starts_with("/srv/pb/site.yml:5:9: parameter name 'smtp-limit'"),
        "{message}"
    );
    let message = err(&instance_yaml("main_cf:\n  banner: \"a\\nb\""));
    assert!(
        message.starts_with("/srv/pb/site.yml:5:17: `banner` contains a line break"),
        "{message}"
    );
}

#[test]
fn master_entries_defaults_and_checks() {
    let pb = ok(&instance_yaml(
        "master_cf:\n  - service: slow\n    type: unix\n    command: smtp\n    maxproc: 10\n    args: [\"-o\", \"syslog_name=postfix/slow\"]\n    options: {smtp_helo_name: x}\n  - service: smtp\n    type: inet\n    state: absent",
    ));
    let entries = &pb.plays[0].instances[0].master_cf;
    assert_eq!(entries[0].kind, crate::model::ServiceType::Unix);
    assert_eq!(entries[0].private.raw, "-");
    assert_eq!(entries[0].maxproc.raw, "10");
    assert_eq!(entries[0].args.len(), 2);
    assert_eq!(entries[0].options[0].name, "smtp_helo_name");
    assert!(!entries[0].remove);
    assert!(entries[1].remove);
    assert!(entries[1].command.is_none());

    let message = err(&instance_yaml(
        "master_cf:\n  - service: slow\n    type: tcp\n    command: smtp",
    ));
    assert!(
        message.starts_with("/srv/pb/site.yml:6:17: master.cf type 'tcp' is not one of"),
        "{message}"
    );
    let message = err(&instance_yaml(
        "master_cf:\n  - service: slow\n    type: unix",
    ));
    assert!(
        message.starts_with("/srv/pb/site.yml:5:11: a master.cf entry needs a `command`"),
        "{message}"
    );
    let message = err(&instance_yaml(
        "master_cf:\n  - service: a b\n    type: unix\n    command: smtp",
    ));
    assert!(
        message.starts_with("/srv/pb/site.yml:5:20: master.cf service 'a b'"),
        "{message}"
    );
    let message = err(&instance_yaml(
        "master_cf:\n  - service: s\n    type: unix\n    command: smtp\n    chroot: maybe",
    ));
    assert!(
        message.starts_with("/srv/pb/site.yml:8:19: master.cf `chroot` must be y, n or -"),
        "{message}"
    );
    let message = err(&instance_yaml(
        "master_cf:\n  - service: s\n    type: unix\n    command: smtp\n    options: {a: null}",
    ));
    assert!(
        message.starts_with("/srv/pb/site.yml:8:21: option `a` needs a value"),
        "{message}"
    );
}

#[test]
fn tables_defaults_and_checks() {
    let pb = ok(&instance_yaml(
        "tables:\n  - path: transport\n    content: \"a b\\n\"\n  - path: /etc/postfix-nl/senders\n    type: regexp\n    content: x\n    mode: \"0640\"\n  - path: sasl_passwd\n    content: secret\n    secret: true\nfiles:\n  - path: motd\n    content: hi",
    ));
    let instance = &pb.plays[0].instances[0];
    let t = &instance.tables;
    assert_eq!(
        t[0].map_type.as_ref().map(crate::model::MapType::as_str),
        Some("hash")
    );
    assert_eq!(t[0].mode, 0o644);
    assert_eq!(
        t[1].map_type.as_ref().map(crate::model::MapType::as_str),
        Some("regexp")
    );
    assert_eq!(t[1].mode, 0o640);
    assert_eq!(t[2].mode, 0o600, "secrets default to 0600");
    assert!(t[2].secret);
    assert_eq!(instance.files[0].map_type, None);

    let both = err(&instance_yaml(
        "tables:\n  - path: t\n    content: x\n    template: t.j2",
    ));
    assert!(
        both.starts_with(
            "/srv/pb/site.yml:5:11: a table needs exactly one of `template` or `content`"
        ),
        "{both}"
    );
    let neither = err(&instance_yaml("files:\n  - path: t"));
    assert!(
        neither.starts_with(
            "/srv/pb/site.yml:5:11: a file needs exactly one of `template` or `content`"
        ),
        "{neither}"
    );
    let mode = err(&instance_yaml(
        "tables:\n  - path: t\n    content: x\n    mode: \"0999\"",
    ));
    assert!(
        mode.starts_with("/srv/pb/site.yml:7:17: mode '0999' is not an octal file mode"),
        "{mode}"
    );
    let dotdot = err(&instance_yaml(
        "tables:\n  - path: ../../etc/shadow\n    content: x",
    ));
    assert!(
        dotdot.starts_with("/srv/pb/site.yml:5:17: path '../../etc/shadow' must not contain '..'"),
        "{dotdot}"
    );
    let kind = err(&instance_yaml(
        "tables:\n  - path: t\n    type: inline\n    content: x",
    ));
    assert!(kind.contains("table type 'inline' is not one of"), "{kind}");
    let main_cf = err(&instance_yaml("files:\n  - path: main.cf\n    content: x"));
    assert!(
        main_cf.contains("use `main_cf_template` or `main_cf`"),
        "{main_cf}"
    );
}

#[test]
fn templated_values_are_checked_per_host_not_at_load() {
    // Could hold "..": only rendering can tell.
    ok(&instance_yaml(
        "tables:\n  - path: \"{{ table_dir }}/t\"\n    content: x",
    ));
    ok(&instance_yaml(
        "master_cf:\n  - service: \"{{ ip }}:2526\"\n    type: inet\n    command: smtpd",
    ));
}

#[test]
fn template_files_are_found_in_order_and_compiled() {
    let dir = tree(&[
        ("playbooks/site.yml", ""),
        ("templates/shared.j2", "shared {{ a }}"),
        ("playbooks/templates/local.j2", "local"),
        ("playbooks/beside.j2", "{% include \"shared.j2\" %}"),
    ]);
    let text = instance_yaml(
        "main_cf_template: local.j2\nmaster_cf_template: beside.j2\ntables:\n  - path: t\n    template: shared.j2",
    );
    let path = dir.path().join("playbooks/site.yml");
    let pb = parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let instance = &pb.plays[0].instances[0];
    let main = instance.main_cf_template.as_ref().unwrap();
    assert_eq!(main.path, dir.path().join("playbooks/templates/local.j2"));
    let master = instance.master_cf_template.as_ref().unwrap();
    assert_eq!(master.path, dir.path().join("playbooks/beside.j2"));
    match &instance.tables[0].source {
        FileSource::Template(t) => {
            assert_eq!(t.path, dir.path().join("playbooks/../templates/shared.j2"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_template_lists_the_places_tried() {
    let dir = tree(&[("pb/site.yml", "")]);
    let path = dir.path().join("pb/site.yml");
    let e = parse(&instance_yaml("main_cf_template: nope.j2"), &path).unwrap_err();
    assert_eq!(e.message, "template 'nope.j2' not found");
    assert_eq!(e.pos.as_ref().map(|p| (p.line, p.column)), Some((4, 25)));
    let d = dir.path().join("pb");
    assert_eq!(
        e.hint.unwrap(),
        format!(
            "tried: {}, {}, {}",
            d.join("templates/nope.j2").display(),
            d.join("../templates/nope.j2").display(),
            d.join("nope.j2").display()
        )
    );
}

#[test]
fn template_syntax_errors_name_the_file_line() {
    let dir = tree(&[("templates/bad.j2", "line one\nrelay = {{ relay \n")]);
    let path = dir.path().join("site.yml");
    let e = parse(&instance_yaml("main_cf_template: bad.j2"), &path).unwrap_err();
    let file = dir.path().join("templates/bad.j2");
    assert_eq!(e.pos, Some(crate::error::SourcePos::new(&file, 3, 1)));
    assert!(
        e.message.starts_with("template syntax error: expected"),
        "{}",
        e.message
    );

    // An inline value: the position inside the playbook.
    let e = load_text(&instance_yaml("main_cf:\n  relayhost: \"{{ relay }\"")).unwrap_err();
    assert!(e.to_string().starts_with("/srv/pb/site.yml:5:"), "{e}");
    assert!(e.message.starts_with("template syntax error"), "{e}");
}

#[test]
fn play_vars_and_defaults_keep_templates() {
    let pb = ok("- hosts: mx\n  defaults:\n    relay: \"[{{ gw }}]:25\"\n    n: 3\n  vars:\n    list: [a, \"{{ b }}\"]\n  instances: []\n");
    let play = &pb.plays[0];
    assert!(matches!(play.defaults[0].value, VarValue::Text(_)));
    assert!(matches!(play.defaults[1].value, VarValue::Plain(_)));
    assert!(
        matches!(&play.vars[0].value, VarValue::List(items) if matches!(items[0], VarValue::Plain(_)))
    );
    let message = err("- hosts: mx\n  vars:\n    my-var: 1\n  instances: []\n");
    assert!(
        message.starts_with("/srv/pb/site.yml:3:5: variable name 'my-var'"),
        "{message}"
    );
}

#[test]
fn load_reads_the_file_and_reports_missing_ones() {
    let dir = tree(&[("site.yml", MINIMAL)]);
    let pb = load(&dir.path().join("site.yml")).unwrap();
    assert_eq!(pb.path, dir.path().join("site.yml"));
    let e = load(&PathBuf::from("/nonexistent/site.yml")).unwrap_err();
    assert!(
        e.message
            .starts_with("cannot read playbook /nonexistent/site.yml"),
        "{e}"
    );
}

#[test]
fn verify_checks_are_smtp_probes_or_commands() {
    let pb = ok("- hosts: all\n  instances:\n    - name: postfix-out\n      verify:\n        - smtp: 127.0.0.1:2600\n        - {smtp: '[::1]:25', expect: 250}\n        - command: test -s /etc/postfix-out/transport.db\n");
    use crate::model::Check;
    assert_eq!(
        pb.plays[0].instances[0].verify,
        [
            Check::Smtp {
                host: "127.0.0.1".into(),
                port: 2600,
                expect: 220
            },
            Check::Smtp {
                host: "::1".into(),
                port: 25,
                expect: 250
            },
            Check::Command("test -s /etc/postfix-out/transport.db".into()),
        ]
    );
    for (bad, says) in [
        ("{smtp: localhost}", "is not HOST:PORT"),
        ("{smtp: 'a:0'}", "is not a port"),
        ("{smtp: 'a:25', expect: 700}", "from 200 to 599"),
        ("{smtp: 'a:25', command: x}", "one of them"),
        ("{command: ' '}", "not empty"),
        ("{}", "one of them"),
    ] {
        let text = format!(
            "- hosts: all\n  instances:\n    - name: postfix-out\n      verify:\n        - {bad}\n"
        );
        let e = err(&text);
        assert!(e.contains(says) && e.contains("site.yml:5:"), "{bad}: {e}");
    }
}
