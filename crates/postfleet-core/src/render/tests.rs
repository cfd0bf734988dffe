use std::path::Path;

use serde_json::json;

use super::*;
use crate::inventory;
use crate::model::{DesiredInstance, InstanceState, MasterEntry, MasterService};
use crate::playbook;

const INVENTORY: &str = r#"
all:
  vars:
    relay: all-relay
    gw: 10.0.0.1
  children:
    mx:
      vars:
        relay: mx-relay
        level: mx
      hosts:
        mx1:
          level: host
        mx2:
    other:
      hosts:
        db1:
"#;

fn inv() -> Inventory {
    inventory::parse(
        INVENTORY,
        Path::new("/srv/pb/inventory.yml"),
        &VarMap::new(),
    )
    .unwrap()
}

fn pb(text: &str) -> Playbook {
    playbook::parse(text, Path::new("/srv/pb/site.yml")).unwrap_or_else(|e| panic!("{e}"))
}

fn host<'a>(inv: &'a Inventory, name: &str) -> &'a Host {
    inv.hosts.iter().find(|h| h.name == name).unwrap()
}

fn render(pb_text: &str, host_name: &str, extra: &VarMap) -> Result<DesiredHost, InputError> {
    let inv = inv();
    render_host(&pb(pb_text), &inv, host(&inv, host_name), extra)
}

fn one(pb_text: &str, host_name: &str) -> DesiredInstance {
    let desired = render(pb_text, host_name, &VarMap::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(desired.instances.len(), 1);
    desired.instances.into_iter().next().unwrap()
}

fn param(instance: &DesiredInstance, name: &str) -> Option<String> {
    instance.main_cf_params.get(name).cloned().flatten()
}

/// A play on `mx` with one instance whose main.cf sets `shown` to `value`.
fn showing(value: &str, play_extra: &str) -> String {
    format!("- hosts: mx\n{play_extra}  instances:\n    - name: \"-\"\n      main_cf:\n        shown: \"{value}\"\n")
}

#[test]
fn context_group_and_host_vars() {
    assert_eq!(
        param(
            &one(&showing("{{ relay }}/{{ level }}", ""), "mx1"),
            "shown"
        )
        .unwrap(),
        "mx-relay/host"
    );
    assert_eq!(
        param(
            &one(&showing("{{ relay }}/{{ level }}", ""), "mx2"),
            "shown"
        )
        .unwrap(),
        "mx-relay/mx"
    );
}

#[test]
fn play_vars_beat_inventory_and_extra_vars_beat_play_vars() {
    let text = showing("{{ relay }}", "  vars:\n    relay: play-relay\n");
    assert_eq!(param(&one(&text, "mx1"), "shown").unwrap(), "play-relay");
    let mut extra = VarMap::new();
    extra.insert("relay".into(), json!("cli-relay"));
    let desired = render(&text, "mx1", &extra).unwrap();
    assert_eq!(param(&desired.instances[0], "shown").unwrap(), "cli-relay");
}

#[test]
fn defaults_are_below_inventory_vars() {
    let text = showing(
        "{{ relay }} {{ port }}",
        "  defaults:\n    relay: default-relay\n    port: 25\n",
    );
    assert_eq!(param(&one(&text, "mx1"), "shown").unwrap(), "mx-relay 25");
}

#[test]
fn templated_vars_see_other_vars() {
    // The lab case: a default built from an inventory var, used by a play var.
    let text = showing(
        "{{ next_hop }}",
        "  defaults:\n    normal_relay: \"[{{ gw }}]:2525\"\n  vars:\n    next_hop: \"relay={{ normal_relay }}\"\n",
    );
    assert_eq!(
        param(&one(&text, "mx1"), "shown").unwrap(),
        "relay=[10.0.0.1]:2525"
    );
}

#[test]
fn templated_inventory_and_extra_vars_are_rendered_too() {
    let mut extra = VarMap::new();
    extra.insert("target".into(), json!("{{ gw }}:{{ inventory_hostname }}"));
    let desired = render(&showing("{{ target }}", ""), "mx2", &extra).unwrap();
    assert_eq!(
        param(&desired.instances[0], "shown").unwrap(),
        "10.0.0.1:mx2"
    );
}

#[test]
fn templated_vars_in_a_loop_are_an_error() {
    let text = showing(
        "{{ a }}",
        "  vars:\n    a: \"{{ b }}\"\n    b: \"x{{ a }}\"\n",
    );
    let e = render(&text, "mx1", &VarMap::new()).unwrap_err();
    assert_eq!(
        e.message,
        "variables refer to each other in a loop: a -> b -> a"
    );
    assert_eq!(e.host.as_deref(), Some("mx1"));
    let pos = e.pos.unwrap();
    assert_eq!((pos.line, pos.column), (3, 8));
}

#[test]
fn a_very_long_chain_of_variables_is_an_error_not_a_crash() {
    // v0 -> v1 -> ... -> v4999: recursing that deep would overflow a test thread's stack.
    let mut vars = String::from("  vars:\n");
    for i in 0..5_000 {
        vars.push_str(&format!("    v{i}: \"{{{{ v{} }}}}\"\n", i + 1));
    }
    vars.push_str("    v5000: end\n");
    let e = render(&showing("{{ v0 }}", &vars), "mx1", &VarMap::new()).unwrap_err();
    assert!(
        e.message
            .starts_with("variables refer to each other more than 100 deep (from v0 to"),
        "{}",
        e.message
    );
    // a chain within the limit renders
    let mut vars = String::from("  vars:\n");
    for i in 0..50 {
        vars.push_str(&format!("    v{i}: \"{{{{ v{} }}}}\"\n", i + 1));
    }
    vars.push_str("    v50: end\n");
    let desired = render(&showing("{{ v0 }}", &vars), "mx1", &VarMap::new()).unwrap();
    assert_eq!(param(&desired.instances[0], "shown").unwrap(), "end");
}

#[test]
fn magic_vars() {
    let text = showing(
        "{{ inventory_hostname }} {{ group_names | join(sep=',') }} {{ groups.mx | length }}",
        "",
    );
    assert_eq!(param(&one(&text, "mx1"), "shown").unwrap(), "mx1 mx 2");
}

#[test]
fn undefined_variable_in_a_value_names_the_position_and_host() {
    let e = render(
        &showing("[{{ normal_relay }}]:2525", ""),
        "mx1",
        &VarMap::new(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/pb/site.yml:5:21: host mx1: variable `normal_relay` is not defined\n  \
         hint: define `normal_relay` in the inventory (host or group vars), in the play's vars or defaults, or with -e normal_relay=..."
    );
}

#[test]
fn undefined_variable_in_a_block_value_names_its_line() {
    let text = "- hosts: mx\n  instances:\n    - name: \"-\"\n      tables:\n        - path: t\n          content: |\n            a {{ relay }}\n            b {{ nope.x }}\n";
    let e = render(text, "mx1", &VarMap::new()).unwrap_err();
    assert_eq!(e.message, "variable `nope.x` is not defined");
    let pos = e.pos.unwrap();
    assert_eq!((pos.line, pos.column), (8, 18));
}

#[test]
fn undefined_variable_in_a_template_file_names_template_line_and_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    let template = dir.path().join("templates/transport.j2");
    std::fs::write(
        &template,
        "# transport\n{% for d in domains %}\n{{ d }} {{ nexthop }}\n{% endfor %}\n",
    )
    .unwrap();
    let text = "- hosts: mx\n  vars:\n    domains: [a.fr]\n  instances:\n    - name: \"-\"\n      tables:\n        - path: transport\n          template: transport.j2\n";
    let pb = playbook::parse(text, &dir.path().join("site.yml")).unwrap();
    let inv = inv();
    let e = render_host(&pb, &inv, host(&inv, "mx2"), &VarMap::new()).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        format!(
            "{}:3:12: host mx2: variable `nexthop` is not defined",
            template.display()
        )
    );
}

#[test]
fn rendered_values_are_checked_with_host() {
    let mut extra = VarMap::new();
    extra.insert("dir".into(), json!("../../etc"));
    let text = "- hosts: mx\n  instances:\n    - name: \"-\"\n      tables:\n        - path: \"{{ dir }}/x\"\n          content: x\n";
    let e = render(text, "mx1", &extra).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/pb/site.yml:5:17: host mx1: path '../../etc/x' must not contain '..'"
    );

    extra.insert("dir".into(), json!("a\nb"));
    let e = render(&showing("{{ dir }}", ""), "mx1", &extra).unwrap_err();
    assert_eq!(e.message, "`shown` contains a line break: \"a\\nb\"");
    assert_eq!(e.host.as_deref(), Some("mx1"));
}

#[test]
fn main_cf_values_lists_and_removal() {
    let text = "- hosts: mx\n  instances:\n    - name: postfix-nl\n      main_cf:\n        mynetworks: [127.0.0.0/8, \"{{ gw }}/32\", \"{{ inventory_hostname }}\"]\n        smtpd_use_tls: yes\n        limit: 10\n        old: null\n";
    let instance = one(text, "mx1");
    assert_eq!(
        param(&instance, "mynetworks").unwrap(),
        "127.0.0.0/8, 10.0.0.1/32, mx1"
    );
    assert_eq!(param(&instance, "smtpd_use_tls").unwrap(), "yes");
    assert_eq!(param(&instance, "limit").unwrap(), "10");
    assert_eq!(instance.main_cf_params.get("old"), Some(&None));
    assert_eq!(instance.state, InstanceState::Present);
    assert!(instance.enabled);
}

#[test]
fn master_entries() {
    let text = r#"- hosts: mx
  instances:
    - name: postfix-nl
      master_cf:
        - service: "{{ gw }}:2526"
          type: inet
          private: "n"
          command: smtpd
        - service: throttled
          type: unix
          chroot: no
          maxproc: 5
          command: smtp
          args: ["-o", "syslog_name=postfix-nl/throttled"]
          options: {smtp_helo_name: "{{ inventory_hostname }}", smtpd_client_restrictions: "permit_mynetworks, reject"}
        - service: smtp
          type: inet
          state: absent
"#;
    let instance = one(text, "mx1");
    let dash = || "-".to_string();
    assert_eq!(
        instance.master_services,
        vec![
            MasterService {
                service: "10.0.0.1:2526".into(),
                kind: crate::model::ServiceType::Inet,
                entry: Some(MasterEntry {
                    private: "n".into(),
                    unpriv: dash(),
                    chroot: dash(),
                    wakeup: dash(),
                    maxproc: dash(),
                    command: "smtpd".into(),
                    args: vec![],
                }),
            },
            MasterService {
                service: "throttled".into(),
                kind: crate::model::ServiceType::Unix,
                entry: Some(MasterEntry {
                    private: dash(),
                    unpriv: dash(),
                    chroot: "n".into(),
                    wakeup: dash(),
                    maxproc: "5".into(),
                    command: "smtp".into(),
                    args: vec![
                        "-o".into(),
                        "syslog_name=postfix-nl/throttled".into(),
                        "-o".into(),
                        "smtp_helo_name=mx1".into(),
                        "-o".into(),
                        "{ smtpd_client_restrictions = permit_mynetworks, reject }".into(),
                    ],
                }),
            },
            MasterService {
                service: "smtp".into(),
                kind: crate::model::ServiceType::Inet,
                entry: None,
            },
        ]
    );
}

#[test]
fn tables_and_files() {
    let text = r#"- hosts: mx
  vars:
    domains: [orange.fr, free.fr]
  instances:
    - name: postfix-nl
      tables:
        - path: transport
          content: "{% for d in domains %}{{ d }} throttled:[{{ gw }}]\n{% endfor %}"
        - path: /etc/postfix-nl/senders.pcre
          type: pcre
          content: "/x/ OK\n"
        - path: sasl_passwd
          content: "[relay] user:{{ inventory_hostname }}"
          secret: true
      files:
        - path: ./notes/README
          content: plain
          mode: "0640"
"#;
    let instance = one(text, "mx2");
    let files = &instance.files;
    assert_eq!(files.len(), 4);
    assert_eq!(files[0].path, "/etc/postfix-nl/transport");
    assert_eq!(
        String::from_utf8_lossy(&files[0].content),
        "orange.fr throttled:[10.0.0.1]\nfree.fr throttled:[10.0.0.1]\n"
    );
    assert_eq!(
        files[0]
            .map_type
            .as_ref()
            .map(crate::model::MapType::as_str),
        Some("hash")
    );
    assert_eq!(files[0].mode, 0o644);
    assert_eq!(
        files[1]
            .map_type
            .as_ref()
            .map(crate::model::MapType::as_str),
        Some("pcre")
    );
    assert_eq!(files[2].content, b"[relay] user:mx2");
    assert!(files[2].secret);
    assert_eq!(files[2].mode, 0o600);
    assert_eq!(files[3].path, "/etc/postfix-nl/notes/README");
    assert_eq!(files[3].map_type, None);
    assert_eq!(files[3].mode, 0o640);
}

#[test]
fn whole_file_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/main.cf.j2"),
        "myhostname = {{ inventory_hostname }}.example\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/master.cf.j2"),
        "smtp inet n - y - - smtpd\n",
    )
    .unwrap();
    let text = "- hosts: mx\n  instances:\n    - name: \"-\"\n      main_cf_template: main.cf.j2\n      master_cf_template: master.cf.j2\n      main_cf:\n        relayhost: x\n";
    let pb = playbook::parse(text, &dir.path().join("site.yml")).unwrap();
    let inv = inv();
    let desired = render_host(&pb, &inv, host(&inv, "mx1"), &VarMap::new()).unwrap();
    let instance = &desired.instances[0];
    assert_eq!(
        instance.main_cf.as_deref(),
        Some("myhostname = mx1.example\n")
    );
    assert_eq!(
        instance.master_cf.as_deref(),
        Some("smtp inet n - y - - smtpd\n")
    );
    assert_eq!(param(instance, "relayhost").unwrap(), "x");
}

#[test]
fn autoescape_is_off() {
    let mut extra = VarMap::new();
    extra.insert("v".into(), json!("<a & 'b'>"));
    let desired = render(&showing("{{ v }}", ""), "mx1", &extra).unwrap();
    assert_eq!(param(&desired.instances[0], "shown").unwrap(), "<a & 'b'>");
}

const TWO_PLAYS: &str = r#"- hosts: all
  instances:
    - name: postfix-nl
      group: mta
      main_cf:
        relayhost: first
        keep: kept
      master_cf:
        - service: throttled
          type: unix
          command: smtp
        - service: other
          type: unix
          command: smtp
      tables:
        - path: transport
          content: first
        - path: senders
          content: senders
- hosts: mx1
  instances:
    - name: postfix-nl
      enabled: false
      main_cf:
        relayhost: second
      master_cf:
        - service: throttled
          type: unix
          maxproc: 2
          command: smtp
      tables:
        - path: transport
          content: second
    - name: "-"
      state: absent
"#;

#[test]
fn later_plays_override_by_name_key_and_path() {
    let desired = render(TWO_PLAYS, "mx1", &VarMap::new()).unwrap();
    let names: Vec<&str> = desired.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["postfix-nl", "-"]);
    let nl = &desired.instances[0];
    assert!(!nl.enabled);
    assert_eq!(nl.state, InstanceState::Present);
    assert_eq!(nl.group.as_deref(), Some("mta"));
    assert_eq!(param(nl, "relayhost").unwrap(), "second");
    assert_eq!(param(nl, "keep").unwrap(), "kept");
    let services: Vec<(String, String)> = nl
        .master_services
        .iter()
        .map(|s| (s.key(), s.entry.as_ref().unwrap().maxproc.clone()))
        .collect();
    assert_eq!(
        services,
        [
            ("throttled/unix".to_string(), "2".to_string()),
            ("other/unix".to_string(), "-".to_string())
        ]
    );
    let files: Vec<(&str, &[u8])> = nl
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_slice()))
        .collect();
    assert_eq!(
        files,
        [
            ("/etc/postfix-nl/transport", &b"second"[..]),
            ("/etc/postfix-nl/senders", &b"senders"[..])
        ]
    );
    assert_eq!(desired.instances[1].state, InstanceState::Absent);
}

#[test]
fn plays_that_do_not_match_are_skipped() {
    let desired = render(TWO_PLAYS, "db1", &VarMap::new()).unwrap();
    assert_eq!(desired.instances.len(), 1);
    assert!(desired.instances[0].enabled);
    assert_eq!(param(&desired.instances[0], "relayhost").unwrap(), "first");
    // A host no play targets renders to nothing (and the CLI leaves it out).
    let inv = inv();
    let targeted = |pb: &Playbook| -> Vec<String> {
        let desired = render_all(pb, &inv, &inv.hosts, &VarMap::new()).unwrap();
        inv.hosts
            .iter()
            .zip(desired)
            .filter(|(_, d)| !d.instances.is_empty())
            .map(|(h, _)| h.name.clone())
            .collect()
    };
    assert_eq!(targeted(&pb(TWO_PLAYS)), ["mx1", "mx2", "db1"]);
    assert!(targeted(&pb_text_on("nosuch")).is_empty());
}

fn pb_text_on(pattern: &str) -> Playbook {
    pb(&format!("- hosts: {pattern}\n  instances: []\n"))
}

#[test]
fn duplicates_within_one_play_are_errors() {
    let text = "- hosts: mx\n  instances:\n    - name: \"-\"\n      tables:\n        - path: t\n          content: a\n      files:\n        - path: /etc/postfix/t\n          content: b\n";
    let e = render(text, "mx1", &VarMap::new()).unwrap_err();
    assert_eq!(e.message, "/etc/postfix/t is declared twice for instance -");
    assert_eq!(e.pos.map(|p| p.line), Some(8));
    let text = "- hosts: mx\n  instances:\n    - name: \"-\"\n      master_cf:\n        - {service: s, type: unix, command: smtp}\n        - {service: s, type: unix, state: absent}\n";
    let e = render(text, "mx1", &VarMap::new()).unwrap_err();
    assert_eq!(
        e.message,
        "master.cf entry s/unix is declared twice for instance -"
    );
}

#[test]
fn render_all_collects_the_first_error_of_each_host() {
    let inv = inv();
    let pb = pb(&showing("{{ only_on_mx1 }}", ""));
    let hosts: Vec<Host> = inv.hosts.clone();
    let errors = render_all(&pb, &inv, &hosts, &VarMap::new()).unwrap_err();
    let failed: Vec<&str> = errors.iter().map(|e| e.host.as_deref().unwrap()).collect();
    assert_eq!(failed, ["mx1", "mx2"]);

    let pb = pb_with_relay();
    let rendered = render_all(&pb, &inv, &hosts, &VarMap::new()).unwrap();
    assert_eq!(rendered.len(), 3);
    assert_eq!(
        param(&rendered[1].instances[0], "shown").unwrap(),
        "mx-relay"
    );
    assert!(rendered[2].instances.is_empty(), "db1 is not in mx");
}

#[test]
fn render_all_gives_every_host_the_same_groups() {
    // `groups` is built once for the run and lent to each host's context in turn: every host,
    // a host after one that failed, and a templated variable that reads it, all see it whole.
    let inv = inv();
    let text = "- hosts: all\n  vars:\n    members: \"{{ groups.mx | join(sep='+') }}\"\n  \
                instances:\n    - name: \"-\"\n      main_cf:\n        \
                shown: \"{{ inventory_hostname }} {{ members }} {{ groups.other | length }}\"\n\
                - hosts: mx\n  instances:\n    - name: \"-\"\n      main_cf:\n        \
                again: \"{{ groups.mx | last }}\"\n";
    let rendered = render_all(&pb(text), &inv, &inv.hosts, &VarMap::new()).unwrap();
    let shown: Vec<String> = rendered
        .iter()
        .map(|d| param(&d.instances[0], "shown").unwrap())
        .collect();
    assert_eq!(shown, ["mx1 mx1+mx2 1", "mx2 mx1+mx2 1", "db1 mx1+mx2 1"]);
    assert_eq!(param(&rendered[1].instances[0], "again").unwrap(), "mx2");
    let failing = "- hosts: all\n  instances:\n    - name: \"-\"\n      main_cf:\n        \
                   shown: \"{{ groups.mx | length }} {{ level }}\"\n";
    // db1 (no `level`) fails first; the hosts after it render.
    let mut hosts = inv.hosts.clone();
    hosts.rotate_right(1);
    let errors = render_all(&pb(failing), &inv, &hosts, &VarMap::new()).unwrap_err();
    let failed: Vec<&str> = errors.iter().map(|e| e.host.as_deref().unwrap()).collect();
    assert_eq!(failed, ["db1"]);
}

fn pb_with_relay() -> Playbook {
    pb(&showing("{{ relay }}", ""))
}

#[test]
fn inputs_can_be_shared_between_threads() {
    // Hosts may be rendered or applied from several threads at once.
    fn shareable<T: Send + Sync>() {}
    shareable::<Playbook>();
    shareable::<Inventory>();
    shareable::<DesiredHost>();
}

#[test]
fn an_instance_may_not_write_into_another_ones_directory_or_postfleets() {
    for (path, expected) in [
        (
            "/etc/postfix/transport",
            "another instance's config directory",
        ),
        (
            "/etc/postfix-b/transport",
            "another instance's config directory",
        ),
        ("/var/lib/postfleet/lock", "postfleet's state directory"),
    ] {
        let text = format!(
            "- hosts: mx\n  instances:\n    - name: postfix-a\n      tables:\n        \
             - {{ path: \"{path}\", content: \"x y\\n\" }}\n    - name: postfix-b\n"
        );
        let e = render(&text, "mx1", &VarMap::new()).unwrap_err();
        assert!(e.message.contains(expected), "{path}: {}", e.message);
        assert!(e.pos.is_some(), "{path}: the error points at the path");
    }
    // its own directory, or one no instance owns, is fine
    let text = "- hosts: mx\n  instances:\n    - name: postfix-a\n      tables:\n        \
                - { path: transport, content: \"x y\\n\" }\n        \
                - { path: /etc/mail/shared, content: \"x y\\n\" }\n";
    render(text, "mx1", &VarMap::new()).unwrap();
}
