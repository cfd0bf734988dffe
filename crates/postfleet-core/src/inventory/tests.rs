use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

const FILE: &str = "/srv/fleet/inventory.yml";

fn inv(text: &str) -> Inventory {
    parse(text, Path::new(FILE), &VarMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn inv_with(text: &str, extra: &VarMap) -> Inventory {
    parse(text, Path::new(FILE), extra).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse(text, Path::new(FILE), &VarMap::new())
        .expect_err("the inventory should be rejected")
        .to_string()
}

fn host<'a>(inv: &'a Inventory, name: &str) -> &'a Host {
    inv.hosts.iter().find(|h| h.name == name).expect("host")
}

fn names(hosts: &[&Host]) -> Vec<String> {
    hosts.iter().map(|h| h.name.clone()).collect()
}

const FLEET: &str = r#"
all:
  vars:
    relay: all-relay
    level: all
  hosts:
    bastion:
  children:
    mx:
      vars:
        level: mx
      hosts:
        mx1:
          relay: mx1-relay
        mx2:
      children:
        mx_eu:
          vars:
            level: mx_eu
          hosts:
            mx3:
    newsletter:
      vars:
        level: newsletter
      hosts:
        mx2:
        nl1:
"#;

#[test]
fn hosts_come_in_file_order() {
    let inv = inv(FLEET);
    let order: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(order, ["bastion", "mx1", "mx2", "mx3", "nl1"]);
}

#[test]
fn groups_include_ancestors_all_first_then_by_depth() {
    let inv = inv(FLEET);
    assert_eq!(host(&inv, "mx3").groups, ["all", "mx", "mx_eu"]);
    assert_eq!(host(&inv, "mx2").groups, ["all", "mx", "newsletter"]);
    assert_eq!(host(&inv, "bastion").groups, ["all", "ungrouped"]);
    assert_eq!(inv.groups["mx"], ["mx1", "mx2", "mx3"]);
    assert_eq!(inv.groups["all"].len(), 5);
    assert_eq!(inv.groups["ungrouped"], ["bastion"]);
}

#[test]
fn deeper_group_beats_parent_and_host_beats_groups() {
    let inv = inv(FLEET);
    assert_eq!(host(&inv, "mx3").vars["level"], json!("mx_eu"));
    assert_eq!(host(&inv, "mx1").vars["level"], json!("mx"));
    assert_eq!(host(&inv, "mx1").vars["relay"], json!("mx1-relay"));
    assert_eq!(host(&inv, "mx3").vars["relay"], json!("all-relay"));
    assert_eq!(host(&inv, "bastion").vars["level"], json!("all"));
}

#[test]
fn sibling_groups_at_the_same_depth_later_in_file_wins() {
    // mx2 is in mx and newsletter (both depth 1): newsletter comes later in the file.
    let inv = inv(FLEET);
    assert_eq!(host(&inv, "mx2").vars["level"], json!("newsletter"));
}

#[test]
fn extra_vars_beat_host_vars() {
    let mut extra = VarMap::new();
    extra.insert("relay".into(), json!("cli"));
    let inv = inv_with(FLEET, &extra);
    assert_eq!(host(&inv, "mx1").vars["relay"], json!("cli"));
}

#[test]
fn top_level_groups_are_children_of_all() {
    let inv = inv("mx:\n  hosts:\n    a:\n    b:\nrelay:\n  hosts:\n    c:\n");
    assert_eq!(host(&inv, "c").groups, ["all", "relay"]);
    assert_eq!(inv.groups["all"], ["a", "b", "c"]);
    assert!(!inv.groups.contains_key("ungrouped"));
}

#[test]
fn a_group_defined_twice_merges_hosts_and_vars() {
    let inv = inv(
        "all:\n  children:\n    mx:\n      hosts: {a: }\n      vars: {x: 1}\n\
         mx:\n  hosts: {b: }\n  vars: {y: 2}\n",
    );
    assert_eq!(inv.groups["mx"], ["a", "b"]);
    assert_eq!(host(&inv, "b").vars["x"], json!(1));
    assert_eq!(host(&inv, "a").vars["y"], json!(2));
}

#[test]
fn host_vars_from_two_places_merge_later_wins() {
    let inv = inv("a:\n  hosts:\n    h: {x: 1, y: 1}\nb:\n  hosts:\n    h: {y: 2}\n");
    assert_eq!(host(&inv, "h").vars["x"], json!(1));
    assert_eq!(host(&inv, "h").vars["y"], json!(2));
}

/// The value of a connection setting, without where it came from.
fn value<T: Clone>(setting: &Option<super::Setting<T>>) -> Option<T> {
    setting.as_ref().map(|s| s.value.clone())
}

#[test]
fn connection_defaults() {
    let inv = inv("all:\n  hosts:\n    mx1.example.org:\n");
    // Nothing set: ssh_config and the defaults fill it in (the controller does).
    let conn = &inv.hosts[0].connection;
    assert_eq!(conn, &super::Connection::default());
}

#[test]
fn connection_from_ansible_names_with_relative_paths() {
    let inv = inv(
        "all:\n  vars:\n    ansible_user: deploy\n    ansible_become: yes\n\
         \x20   ansible_ssh_private_key_file: keys/id_ed25519\n\
         \x20   ansible_ssh_known_hosts_file: known_hosts\n\
         \x20 hosts:\n    mx1:\n      ansible_host: 10.0.0.1\n      ansible_port: 2222\n",
    );
    let conn = &inv.hosts[0].connection;
    assert_eq!(value(&conn.address), Some("10.0.0.1".to_string()));
    assert_eq!(value(&conn.port), Some(2222));
    assert_eq!(value(&conn.user), Some("deploy".to_string()));
    assert!(conn.become_root);
    assert_eq!(
        value(&conn.key_files),
        Some(vec![PathBuf::from("/srv/fleet/keys/id_ed25519")])
    );
    assert_eq!(
        value(&conn.known_hosts),
        Some(PathBuf::from("/srv/fleet/known_hosts"))
    );
}

#[test]
fn connection_from_our_names_key_list_and_absolute_path() {
    let inv = inv(
        "all:\n  hosts:\n    mx1:\n      ssh_host: mx1.lab\n      ssh_port: '2200'\n\
         \x20     ssh_user: ops\n      become: false\n      ssh_key_file: [/keys/a, b]\n",
    );
    let conn = &inv.hosts[0].connection;
    assert_eq!(value(&conn.address), Some("mx1.lab".to_string()));
    assert_eq!(value(&conn.port), Some(2200));
    assert_eq!(value(&conn.user), Some("ops".to_string()));
    assert!(!conn.become_root);
    assert_eq!(
        value(&conn.key_files),
        Some(vec![
            PathBuf::from("/keys/a"),
            PathBuf::from("/srv/fleet/b")
        ])
    );
}

#[test]
fn the_more_specific_of_both_names_wins() {
    // The group sets ours, the host sets Ansible's: the host is more specific.
    let inv = inv("mx:\n  vars: {ssh_user: a}\n  hosts:\n    h: {ansible_user: b}\n");
    assert_eq!(value(&inv.hosts[0].connection.user), Some("b".to_string()));
    // Both at the same level: ours wins.
    let inv = inv_text_user("h: {ansible_user: b, ssh_user: a}");
    assert_eq!(value(&inv.hosts[0].connection.user), Some("a".to_string()));
}

fn inv_text_user(host_line: &str) -> Inventory {
    inv(&format!("all:\n  hosts:\n    {host_line}\n"))
}

#[test]
fn extra_vars_set_connection_too() {
    let mut extra = VarMap::new();
    extra.insert("ansible_port".into(), json!("2022"));
    extra.insert("become".into(), json!("true"));
    let inv = inv_with("all:\n  hosts:\n    h:\n      ssh_port: 22\n", &extra);
    assert_eq!(value(&inv.hosts[0].connection.port), Some(2022));
    assert!(inv.hosts[0].connection.become_root);
}

#[test]
fn bad_port_names_where_it_was_set_and_the_host() {
    let text = "all:\n  children:\n    mx:\n      vars:\n        ansible_port: 70000\n      hosts:\n        mx1:\n";
    assert_eq!(
        err(text),
        "/srv/fleet/inventory.yml:5:23: host mx1: `ansible_port` must be a port number from 1 to 65535, not 70000"
    );
}

#[test]
fn bad_become_is_an_error() {
    let text = "all:\n  hosts:\n    mx1:\n      become: maybe\n";
    assert_eq!(
        err(text),
        "/srv/fleet/inventory.yml:4:15: host mx1: `become` must be true or false, not \"maybe\""
    );
}

#[test]
fn bad_port_from_extra_vars_says_so() {
    let mut extra = VarMap::new();
    extra.insert("ssh_port".into(), json!("http"));
    let e = parse("all:\n  hosts:\n    h:\n", Path::new(FILE), &extra).unwrap_err();
    assert_eq!(e.pos, None);
    assert_eq!(
        e.to_string(),
        "host h: `ssh_port` (set with -e) must be a port number from 1 to 65535, not \"http\""
    );
}

#[test]
fn unknown_key_in_a_group_is_an_error_with_position() {
    let text = "all:\n  children:\n    mx:\n      host:\n        mx1:\n";
    let message = err(text);
    assert!(
        message.starts_with("/srv/fleet/inventory.yml:4:7: unknown field `host`"),
        "{message}"
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let message = err("all:\n  hosts:\n    a:\n    a:\n");
    assert!(
        message.starts_with("/srv/fleet/inventory.yml:4:5: duplicate key 'a'"),
        "{message}"
    );
}

#[test]
fn group_loops_and_all_as_child_are_errors() {
    let message = err("a:\n  hosts: {h: }\n  children:\n    b:\n      children:\n        a:\n");
    assert!(
        message.contains("group 'a' is its own ancestor"),
        "{message}"
    );
    let message = err("mx:\n  children:\n    all:\n");
    assert!(
        message.starts_with("/srv/fleet/inventory.yml:3:5: 'all' cannot be a child group"),
        "{message}"
    );
}

#[test]
fn empty_inventory_and_bad_names_are_errors() {
    assert!(err("").contains("the inventory defines no hosts"));
    assert!(err("all:\n  vars: {a: 1}\n").contains("the inventory defines no hosts"));
    let message = err("all:\n  hosts:\n    'mx 1':\n");
    assert!(
        message.starts_with("/srv/fleet/inventory.yml:3:5: invalid host name 'mx 1'"),
        "{message}"
    );
    let message = err("all:\n  vars:\n    my-var: 1\n  hosts: {h: }\n");
    assert!(
        message.starts_with("/srv/fleet/inventory.yml:3:5: variable name 'my-var'"),
        "{message}"
    );
}

#[test]
fn vars_keep_their_types_and_zero_padded_numbers() {
    let inv =
        inv("all:\n  hosts:\n    h:\n      n: 5\n      b: yes\n      l: [a, 1]\n      m: 0644\n");
    let vars = &inv.hosts[0].vars;
    assert_eq!(vars["n"], json!(5));
    assert_eq!(vars["b"], json!(true));
    assert_eq!(vars["l"], json!(["a", 1]));
    assert_eq!(vars["m"], json!("0644"));
}

#[test]
fn host_ranges_expand_with_their_vars() {
    let inv = inv("mx:\n  hosts:\n    mx[01:03].lab:\n      relay: r\n    edge:\n");
    let order: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(order, ["mx01.lab", "mx02.lab", "mx03.lab", "edge"]);
    assert_eq!(host(&inv, "mx03.lab").vars["relay"], json!("r"));
    assert_eq!(host(&inv, "mx02.lab").connection.address, None);
    let message = err("mx:\n  hosts:\n    mx[3:1]:\n");
    assert!(
        message.starts_with("/srv/fleet/inventory.yml:3:5: host range '[3:1]' in 'mx[3:1]'"),
        "{message}"
    );
}

// ---- host patterns

fn pick(inv: &Inventory, pattern: &str) -> Vec<String> {
    names(&select(inv, pattern).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn patterns_all_names_groups() {
    let inv = inv(FLEET);
    assert_eq!(pick(&inv, "all").len(), 5);
    assert_eq!(pick(&inv, "*").len(), 5);
    assert_eq!(pick(&inv, "mx1"), ["mx1"]);
    assert_eq!(pick(&inv, "mx"), ["mx1", "mx2", "mx3"]);
    assert_eq!(pick(&inv, "mx_eu"), ["mx3"]);
}

#[test]
fn patterns_union_in_inventory_order() {
    let inv = inv(FLEET);
    assert_eq!(pick(&inv, "nl1,mx1"), ["mx1", "nl1"]);
    assert_eq!(pick(&inv, "nl1:bastion"), ["bastion", "nl1"]);
    assert_eq!(pick(&inv, "mx_eu, newsletter"), ["mx2", "mx3", "nl1"]);
}

#[test]
fn patterns_intersection_and_exclusion() {
    let inv = inv(FLEET);
    assert_eq!(pick(&inv, "mx:&newsletter"), ["mx2"]);
    assert_eq!(pick(&inv, "mx:!mx2"), ["mx1", "mx3"]);
    assert_eq!(pick(&inv, "!mx"), ["bastion", "nl1"]);
    assert_eq!(pick(&inv, "all:!mx:!newsletter"), ["bastion"]);
    // Order does not matter for & and !.
    assert_eq!(pick(&inv, "!mx2:mx"), ["mx1", "mx3"]);
}

#[test]
fn patterns_globs() {
    let inv = inv(FLEET);
    assert_eq!(pick(&inv, "mx*"), ["mx1", "mx2", "mx3"]);
    assert_eq!(pick(&inv, "mx?"), ["mx1", "mx2", "mx3"]);
    assert_eq!(pick(&inv, "mx[13]"), ["mx1", "mx3"]);
    assert_eq!(pick(&inv, "mx[1-2]"), ["mx1", "mx2"]);
    // A glob also matches group names.
    assert_eq!(pick(&inv, "news*"), ["mx2", "nl1"]);
    assert_eq!(pick(&inv, "*:!mx?"), ["bastion", "nl1"]);
}

#[test]
fn limit_matching_nothing_is_an_error_listing_groups() {
    let inv = inv(FLEET);
    let e = select(&inv, "mx1,mx9").unwrap_err();
    assert_eq!(e.message, "no host matches 'mx9'");
    assert_eq!(
        e.hint.as_deref(),
        Some("known groups: all, mx, mx_eu, newsletter, ungrouped; hosts: bastion, mx1, mx2, mx3, nl1")
    );
    let e = select(&inv, "mx:&bastion").unwrap_err();
    assert_eq!(e.message, "host pattern 'mx:&bastion' selects no host");
    assert!(select(&inv, "db*").is_err());
    assert!(select(&inv, "a,,b")
        .unwrap_err()
        .message
        .contains("empty part"));
    assert!(select(&inv, "~mx.*")
        .unwrap_err()
        .message
        .contains("regular expressions"));
}

#[test]
fn lenient_select_ignores_unknown_names() {
    let inv = inv(FLEET);
    let pattern = HostPattern::parse("mx1:nosuch").unwrap();
    assert_eq!(names(&pattern.select(&inv)), ["mx1"]);
    let pattern = HostPattern::parse("nosuch").unwrap();
    assert!(pattern.select(&inv).is_empty());
}

// ---- extra vars

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn extra_vars_key_value_words() {
    let vars = extra_vars::parse(&args(&["a=1 b='x y'", "c=", "d=e=f"])).unwrap();
    assert_eq!(vars["a"], json!("1"));
    assert_eq!(vars["b"], json!("x y"));
    assert_eq!(vars["c"], json!(""));
    assert_eq!(vars["d"], json!("e=f"));
}

#[test]
fn extra_vars_json_and_flow_yaml_keep_types_later_wins() {
    let vars = extra_vars::parse(&args(&[
        r#"{"port": 25, "hosts": ["a", "b"], "x": "json"}"#,
        "{x: yaml, on: true}",
        "x=words",
    ]))
    .unwrap();
    assert_eq!(vars["port"], json!(25));
    assert_eq!(vars["hosts"], json!(["a", "b"]));
    assert_eq!(vars["on"], json!(true));
    assert_eq!(vars["x"], json!("words"));
}

#[test]
fn extra_vars_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.yml");
    std::fs::write(&file, "relay: smtp.example.org\nlimits:\n  rate: 5\n").unwrap();
    let vars = extra_vars::parse(&[format!("@{}", file.display())]).unwrap();
    assert_eq!(vars["relay"], json!("smtp.example.org"));
    assert_eq!(vars["limits"], json!({"rate": 5}));
}

#[test]
fn extra_vars_file_errors_name_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.yml");
    std::fs::write(&file, "relay: a\nrelay: b\n").unwrap();
    let e = extra_vars::parse(&[format!("@{}", file.display())]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:2:1: duplicate key 'relay'", file.display())),
        "{e}"
    );
    std::fs::write(&file, "- a\n- b\n").unwrap();
    let e = extra_vars::parse(&[format!("@{}", file.display())]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:1:1:", file.display())),
        "{e}"
    );
    let e = extra_vars::parse(&args(&["@/nonexistent/vars.yml"])).unwrap_err();
    assert!(e
        .message
        .starts_with("cannot read extra-vars file /nonexistent/vars.yml"));
}

#[test]
fn extra_vars_bad_words() {
    // Errors say which -e and which word, never the text: it may be a password.
    let e = extra_vars::parse(&args(&["x=1", "s3cr3t"])).unwrap_err();
    assert_eq!(e.message, "-e #2: word 1 is not key=value");
    let e = extra_vars::parse(&args(&["a-b=1"])).unwrap_err();
    assert!(e.message.contains("variable name 'a-b'"), "{e}");
    let e = extra_vars::parse(&args(&["relay_password='s3cr3t"])).unwrap_err();
    assert!(e.message.contains("unbalanced quotes"), "{e}");
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    let e = extra_vars::parse(&args(&["{relay_password: [s3cr3t}"])).unwrap_err();
    assert!(e.to_string().starts_with("-e #1:1:"), "{e}");
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
}

#[test]
fn inventory_listing_hides_secret_looking_vars() {
    let inv = inv(
        "mx:\n  vars: {relay_password: s3cr3t, relay: {host: r, api_token: t0k3n}}\n  hosts:\n    mx1:\n",
    );
    for json in [false, true] {
        let text = describe(&inv, &inv.hosts, &|_| json!(null), json);
        assert!(
            !text.contains("s3cr3t") && !text.contains("t0k3n"),
            "{text}"
        );
        assert!(text.contains("(hidden)") && text.contains("host"), "{text}");
    }
}

// ---- `postfleet inventory` output

#[test]
fn describe_yaml_and_json() {
    let inv = inv(
        "mx:\n  vars: {relay: r}\n  hosts:\n    mx1: {ansible_host: 10.0.0.1, ssh_key_file: k}\n    mx2:\n",
    );
    // The connection as the caller resolved it (ssh_config is read by the controller).
    let resolved = |h: &Host| json!({"address": {"value": h.name, "from": "default"}});
    let yaml = describe(&inv, &inv.hosts, &resolved, false);
    let expected = "\
hosts:
  mx1:
    groups:
    - all
    - mx
    connection:
      address:
        from: default
        value: mx1
    vars:
      ansible_host: \"10.0.0.1\"
      relay: r
      ssh_key_file: k
";
    assert!(yaml.starts_with(expected), "{yaml}");
    assert!(
        yaml.contains("groups:\n  all:\n  - mx1\n  - mx2\n  mx:\n"),
        "{yaml}"
    );

    let only_mx2: Vec<Host> = inv
        .hosts
        .iter()
        .filter(|h| h.name == "mx2")
        .cloned()
        .collect();
    let json: serde_json::Value =
        serde_json::from_str(&describe(&inv, &only_mx2, &resolved, true)).unwrap();
    assert_eq!(
        json["hosts"]["mx2"]["connection"]["address"]["value"],
        json!("mx2")
    );
    assert_eq!(json["hosts"]["mx2"]["vars"]["relay"], json!("r"));
    assert_eq!(json["groups"], json!({"all": ["mx2"], "mx": ["mx2"]}));
    assert!(json["hosts"].get("mx1").is_none());
}

// ---- jumps

#[test]
fn jumps_from_our_var_or_ansibles_ssh_args() {
    let inv = inv(
        "all:\n  hosts:\n    a: {ssh_proxy_jump: 'ops@b1:2222,b2'}\n    b: {ansible_ssh_common_args: '-o ProxyJump=b3'}\n\
         \x20   c: {ansible_ssh_common_args: '-J b4 -o ControlPersist=60s'}\n    d: {ssh_proxy_jump: none}\n\
         \x20   e: {ansible_ssh_extra_args: '-Jb5'}\n",
    );
    let jump = |name: &str| value(&host(&inv, name).connection.proxy_jump);
    assert_eq!(jump("a").as_deref(), Some("ops@b1:2222,b2"));
    assert_eq!(jump("b").as_deref(), Some("b3"));
    assert_eq!(jump("c").as_deref(), Some("b4"));
    assert_eq!(jump("d").as_deref(), Some("none"));
    assert_eq!(jump("e").as_deref(), Some("b5"));
}

#[test]
fn jumps_and_ssh_args_postfleet_cannot_honour_are_refused_with_their_place() {
    for (vars, says) in [
        ("ssh_proxy_jump: 'b1:0'", "[user@]host[:port]"),
        ("ssh_proxy_jump: '@b1'", "[user@]host[:port]"),
        (
            "ansible_ssh_common_args: '-o ProxyCommand=\"ssh -W %h:%p gw\"'",
            "ProxyJump",
        ),
        (
            "ansible_ssh_common_args: '-o User=other'",
            "-o user is not supported",
        ),
        ("ansible_ssh_common_args: '-C'", "-J and -o options only"),
        ("ssh_config_file: ''", "path or none"),
    ] {
        let text = format!("all:\n  hosts:\n    mx1:\n      {vars}\n");
        let e = parse(&text, Path::new("/srv/fleet/inventory.yml"), &VarMap::new()).unwrap_err();
        let message = e.to_string();
        assert!(message.contains(says), "{vars}: {message}");
        assert!(message.contains("inventory.yml:4:"), "{vars}: {message}");
    }
}

#[test]
fn hops_are_split_like_openssh() {
    assert_eq!(split_hop("bastion").unwrap(), (None, "bastion", None));
    assert_eq!(
        split_hop("ops@bastion:2222").unwrap(),
        (Some("ops"), "bastion", Some(2222))
    );
    assert_eq!(split_hop("[::1]:22").unwrap(), (None, "::1", Some(22)));
    assert_eq!(split_hop("::1").unwrap(), (None, "::1", None));
    for bad in ["", "@h", "h:0", "h:x", "[::1", "u@"] {
        assert!(split_hop(bad).is_err(), "{bad}");
    }
}
