//! INI and JSON inventories, format detection, several sources, directories, group_vars/ and
//! host_vars/.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

const INI: &str = "/srv/fleet/hosts.ini";

fn ini(text: &str) -> Inventory {
    parse(text, Path::new(INI), &VarMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn ini_err(text: &str) -> InputError {
    parse(text, Path::new(INI), &VarMap::new()).expect_err("the inventory should be rejected")
}

fn host<'a>(inv: &'a Inventory, name: &str) -> &'a Host {
    inv.hosts
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no host {name}"))
}

fn order(inv: &Inventory) -> Vec<&str> {
    inv.hosts.iter().map(|h| h.name.as_str()).collect()
}

// ---- INI

const FLEET_INI: &str = "\
# the fleet
bastion ansible_host=192.0.2.1

[mx]
mx[01:02].lab relay=smtp.lab
mx03.lab:2222 level=host   ; not a comment here: a word

[mx:vars]
level = mx
relay_port = 25

[eu:children]
mx

[eu:vars]
level=eu
zone='eu-west'

[all:vars]
level=all
";

#[test]
fn ini_sections_children_and_vars() {
    let text = FLEET_INI.replace("   ; not a comment here: a word", "");
    let inv = ini(&text);
    assert_eq!(order(&inv), ["bastion", "mx01.lab", "mx02.lab", "mx03.lab"]);
    assert_eq!(host(&inv, "bastion").groups, ["all", "ungrouped"]);
    assert_eq!(host(&inv, "mx01.lab").groups, ["all", "eu", "mx"]);
    assert_eq!(inv.groups["eu"], ["mx01.lab", "mx02.lab", "mx03.lab"]);
    // all < eu (parent) < mx (child) < host
    assert_eq!(host(&inv, "bastion").vars["level"], json!("all"));
    assert_eq!(host(&inv, "mx01.lab").vars["level"], json!("mx"));
    assert_eq!(host(&inv, "mx03.lab").vars["level"], json!("host"));
    assert_eq!(host(&inv, "mx01.lab").vars["zone"], json!("eu-west"));
    assert_eq!(host(&inv, "mx02.lab").vars["relay"], json!("smtp.lab"));
    assert_eq!(host(&inv, "mx02.lab").vars["relay_port"], json!(25));
    // host:PORT is ansible_port
    let mx3 = host(&inv, "mx03.lab");
    assert_eq!(mx3.vars["ansible_port"], json!(2222));
    let port = mx3.connection.port.as_ref().unwrap();
    assert_eq!(port.value, 2222);
    assert_eq!(port.from, format!("{INI}:6:10 (ansible_port)"));
    assert_eq!(
        host(&inv, "bastion")
            .connection
            .address
            .as_ref()
            .unwrap()
            .from,
        format!("{INI}:2:22 (ansible_host)")
    );
}

#[test]
fn ini_values_are_python_literals_quotes_and_comments() {
    let inv = ini("\
h1 a=5 b=\"'5'\" c='a b' d=True e=yes f=0644 g=\"[1, 'x']\" h=\"{'k': 1}\" h2={'k':1} i=1.5 j=-3 k=0x10 l=25,587 # note
[all:vars]
m = 8080 # port
n = hello # world
o = 'quoted' ' joined'
p = \"it's\"
q = None
r =
s = a=b
");
    let vars = &host(&inv, "h1").vars;
    for (name, want) in [
        ("a", json!(5)),
        ("b", json!("5")),
        ("c", json!("a b")),
        ("d", json!(true)),
        ("e", json!("yes")),
        ("f", json!("0644")),
        ("g", json!([1, "x"])),
        ("h", json!({"k": 1})),
        ("h2", json!("{k:1}")), // the shell-like split removed the quotes
        ("i", json!(1.5)),
        ("j", json!(-3)),
        ("k", json!(16)),
        ("l", json!([25, 587])),
        ("m", json!(8080)),
        ("n", json!("hello # world")),
        ("o", json!("quoted joined")),
        ("p", json!("it's")),
        ("q", json!(null)),
        ("r", json!("")),
        ("s", json!("a=b")),
    ] {
        assert_eq!(vars[name], want, "{name}");
    }
    assert!(!vars.contains_key("note"));
}

#[test]
fn ini_host_in_a_group_leaves_ungrouped_and_sections_may_come_in_any_order() {
    let inv = ini("\
a
b
[mx:vars]
x=1
[top:children]
mx
[mx]
a
");
    assert_eq!(host(&inv, "a").groups, ["all", "top", "mx"]);
    assert_eq!(host(&inv, "b").groups, ["all", "ungrouped"]);
    assert_eq!(host(&inv, "a").vars["x"], json!(1));
    assert_eq!(inv.groups["ungrouped"], ["b"]);
}

#[test]
fn ini_ipv6_ranges_with_steps_and_ports() {
    let inv = ini("\
[v6]
fe80::1
[2001:db8::5]:2200
[ranges]
w[0:10:5]
db-[a:c]
mx[01:02]:2525
");
    assert_eq!(
        order(&inv),
        [
            "fe80::1",
            "2001:db8::5",
            "w0",
            "w5",
            "w10",
            "db-a",
            "db-b",
            "db-c",
            "mx01",
            "mx02"
        ]
    );
    assert!(!host(&inv, "fe80::1").vars.contains_key("ansible_port"));
    assert_eq!(host(&inv, "2001:db8::5").vars["ansible_port"], json!(2200));
    assert_eq!(host(&inv, "mx02").vars["ansible_port"], json!(2525));
}

#[test]
fn ini_a_var_after_the_port_wins() {
    let inv = ini("mx1:2222 ansible_port=22\n");
    assert_eq!(
        host(&inv, "mx1").connection.port.as_ref().unwrap().value,
        22
    );
}

/// Each INI error: its message, where it points (line:column) and that it says what to write.
#[test]
fn a_port_in_the_host_key_is_set_where_the_host_is_first_declared_only() {
    // Ansible's add_host takes the port only when it creates the host
    let inv =
        ini("[a]\nh\n[b]\nh:3333\n[c]\nk:22\n[d]\nk:2222\n[e]\nm:25\n[f]\nm ansible_port=26\n");
    assert!(!host(&inv, "h").vars.contains_key("ansible_port"));
    assert_eq!(host(&inv, "k").vars["ansible_port"], json!(22));
    let port = host(&inv, "k").connection.port.as_ref().unwrap();
    assert_eq!(port.from, format!("{INI}:6:3 (ansible_port)"));
    // a var, later, still wins
    assert_eq!(host(&inv, "m").vars["ansible_port"], json!(26));
    assert_eq!(host(&inv, "h").groups, ["all", "a", "b"]);
}

#[test]
fn yaml_host_keys_take_a_port_as_ansible_yaml_plugin_does() {
    let yaml = "\
all:
  hosts:
    mx1.lab:2222:
    mx[2:3].lab:2200: {level: 1}
    '[2001:db8::5]:2525':
    fe80::1:
    mx4.lab:2222: {ansible_port: 22}
  children:
    again:
      hosts:
        mx1.lab:3333:
";
    let inv = parse(yaml, Path::new("/srv/fleet/hosts.yml"), &VarMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        order(&inv),
        [
            "mx1.lab",
            "mx2.lab",
            "mx3.lab",
            "2001:db8::5",
            "fe80::1",
            "mx4.lab"
        ]
    );
    let port = |name: &str| host(&inv, name).vars.get("ansible_port").cloned();
    assert_eq!(port("mx1.lab"), Some(json!(2222)));
    assert_eq!(port("mx3.lab"), Some(json!(2200)));
    assert_eq!(port("2001:db8::5"), Some(json!(2525)));
    assert_eq!(port("fe80::1"), None);
    assert_eq!(port("mx4.lab"), Some(json!(22)));
    assert_eq!(host(&inv, "mx1.lab").groups, ["all", "again"]);
    let from = &host(&inv, "mx1.lab").connection.port.as_ref().unwrap().from;
    assert_eq!(from, "/srv/fleet/hosts.yml:3:5 (ansible_port)");
    // the same hosts in INI resolve alike
    let ini_inv = ini("mx1.lab:2222\nmx[2:3].lab:2200 level=1\n[2001:db8::5]:2525\nfe80::1\nmx4.lab:2222 ansible_port=22\n[again]\nmx1.lab:3333\n");
    for h in &inv.hosts {
        assert_eq!(host(&ini_inv, &h.name).vars, h.vars, "{}", h.name);
    }
}

#[test]
fn a_host_declared_again_in_a_group_is_a_member_once_and_a_large_group_loads() {
    let inv = ini("[mx]\nmx1\nmx2\nmx1 a=1\nmx[1:2]\n[eu:children]\nmx\n[eu]\nmx2\n");
    assert_eq!(inv.groups["mx"], ["mx1", "mx2"]);
    assert_eq!(inv.groups["eu"], ["mx1", "mx2"]);
    assert_eq!(host(&inv, "mx2").groups, ["all", "eu", "mx"]);
    assert_eq!(host(&inv, "mx1").vars["a"], json!(1));
    // 100,000 hosts in one group: declaring them is linear (it was quadratic)
    let inv = ini("[g]\nmx[1:100000]\n");
    assert_eq!(inv.groups["g"].len(), 100_000);
}

#[test]
fn ini_errors_point_at_the_offending_token_with_a_hint() {
    for (text, at, says) in [
        (
            "[mx:hostz]\nh\n",
            "1:5",
            "section [mx:hostz] has unknown type 'hostz'",
        ),
        (
            "[mx]\nh\n[mx vars]\n",
            "3:1",
            "invalid section header '[mx vars]'",
        ),
        ("  [mx]]\n", "1:3", "invalid section header '[mx]]'"),
        (
            "[mx]\nh\n[db:vars]\nx=1\n",
            "3:2",
            "section [db:vars] is not valid for undefined group 'db'",
        ),
        (
            "[mx]\nh\n[eu:children]\nmx\n  db\n",
            "5:3",
            "section [eu:children] includes undefined group 'db'",
        ),
        (
            "[mx]\nh\n[eu:children]\nmx extra\n",
            "4:4",
            "expected a group name, got 'mx extra'",
        ),
        (
            "[mx]\nh\n[mx:vars]\njust-a-word\n",
            "4:1",
            "expected NAME=VALUE, got 'just-a-word'",
        ),
        (
            "[mx]\nh\n[mx:vars]\nmy-var=1\n",
            "4:1",
            "variable name 'my-var' is not usable",
        ),
        (
            "h a=1 oops\n",
            "1:7",
            "expected NAME=VALUE after the host, got 'oops'",
        ),
        (
            "h a='open\n",
            "1:5",
            "cannot split the host line: this quote is not closed",
        ),
        (
            "h a=1 \\\n",
            "1:7",
            "cannot split the host line: a backslash ends the line",
        ),
        ("[mx]\n  mx1: a=1\n", "2:6", "invalid host pattern 'mx1:'"),
        ("[mx]\nmx[3:1]\n", "2:1", "host range '[3:1]' in 'mx[3:1]'"),
        ("h 1x=2\n", "1:3", "variable name '1x'"),
        ("h\n---\n", "2:1", "'---' is not a host name"),
        (
            "[mx]\nh\n[all:children]\nall\n",
            "4:1",
            "'all' cannot be a child group",
        ),
        (
            "[mx]\nmx1:0\n",
            "2:5",
            "host mx1: `ansible_port` must be a port number from 1 to 65535, not 0",
        ),
        (
            "h ansible_become=maybe\n",
            "1:18",
            "host h: `ansible_become` must be true or false",
        ),
    ] {
        let e = ini_err(text);
        let shown = e.to_string();
        let head = shown.lines().next().unwrap();
        assert!(
            head.starts_with(&format!("{INI}:{at}: {says}")),
            "{text:?}: expected {at}: {says}\n got {shown}"
        );
        // what the parser refuses says what to write; a bad connection value says what it must be
        assert!(
            e.hint.is_some() || e.host.is_some(),
            "{text:?}: no hint: {shown}"
        );
    }
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_line() {
    let inv = ini("\u{feff}[mx]\nmx1\n");
    assert_eq!(host(&inv, "mx1").groups, ["all", "mx"]);
}

#[test]
fn ini_vars_of_all_and_ungrouped_need_no_section() {
    let inv = ini("h\n[all:vars]\na=1\n[ungrouped:vars]\nb=2\n");
    assert_eq!(host(&inv, "h").vars["a"], json!(1));
    assert_eq!(host(&inv, "h").vars["b"], json!(2));
}

// ---- JSON

const LIST_JSON: &str = r#"{
    "_meta": {
        "hostvars": {
            "mx1": {
                "ansible_port": 2222,
                "relay": "mx1-relay"
            },
            "ghost": {
                "x": 1
            }
        }
    },
    "all": {
        "children": [
            "ungrouped",
            "mx"
        ],
        "vars": {
            "level": "all"
        }
    },
    "mx": {
        "hosts": [
            "mx1",
            "mx2"
        ],
        "children": [
            "mx_eu"
        ],
        "vars": {
            "level": "mx"
        }
    },
    "mx_eu": [
        "mx3"
    ],
    "ungrouped": {
        "hosts": [
            "bastion"
        ]
    }
}
"#;

#[test]
fn json_as_ansible_inventory_lists_it() {
    let inv = parse(LIST_JSON, Path::new("/srv/fleet/inv.json"), &VarMap::new()).unwrap();
    assert_eq!(order(&inv), ["mx1", "mx2", "mx3", "bastion"]);
    assert_eq!(host(&inv, "mx3").groups, ["all", "mx", "mx_eu"]);
    assert_eq!(host(&inv, "bastion").groups, ["all", "ungrouped"]);
    assert_eq!(host(&inv, "mx3").vars["level"], json!("mx"));
    assert_eq!(host(&inv, "bastion").vars["level"], json!("all"));
    assert_eq!(host(&inv, "mx1").vars["relay"], json!("mx1-relay"));
    // a host only in hostvars is not a host
    assert!(inv.hosts.iter().all(|h| h.name != "ghost"));
    let port = host(&inv, "mx1").connection.port.as_ref().unwrap();
    assert_eq!(port.from, "/srv/fleet/inv.json:5:33 (ansible_port)");
}

/// What ansible-core 2.19 prints for `ansible-inventory -i hosts.ini --list` (its `_meta`
/// has a `profile`).
const LIST_JSON_2_19: &str = r#"{
    "_meta": {
        "hostvars": {
            "mx1": {
                "ansible_port": 2222,
                "level": 1,
                "relay": "r"
            },
            "mx2": {
                "level": 1,
                "relay": "r"
            }
        },
        "profile": "inventory_legacy"
    },
    "all": {
        "children": [
            "ungrouped",
            "mx"
        ]
    },
    "mx": {
        "hosts": [
            "mx1",
            "mx2"
        ]
    }
}
"#;

#[test]
fn json_printed_by_ansible_core_2_19_is_read_and_its_meta_profile_ignored() {
    let inv = parse(
        LIST_JSON_2_19,
        Path::new("/srv/fleet/inv.json"),
        &VarMap::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order(&inv), ["mx1", "mx2"]);
    assert_eq!(host(&inv, "mx1").groups, ["all", "mx"]);
    assert_eq!(host(&inv, "mx1").vars["ansible_port"], json!(2222));
    assert_eq!(host(&inv, "mx2").vars["relay"], json!("r"));
    // in a group, an unknown key is still an error, at the key
    let e = parse(
        "{\"mx\": {\"hosts\": [\"a\"], \"profile\": 1}}",
        Path::new("/srv/fleet/inv.json"),
        &VarMap::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/srv/fleet/inv.json:1:25: unknown key `profile` in group 'mx'"),
        "{e}"
    );
}

#[test]
fn json_errors_have_positions() {
    let file = Path::new("/srv/fleet/inv.json");
    let e = parse(
        "{\n  \"mx\": {\"hosts\": [\"a\"], \"hostz\": []}\n}\n",
        file,
        &VarMap::new(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("/srv/fleet/inv.json:2:"), "{e}");
    assert!(e.message.contains("hostz"), "{e}");
    let e = parse(
        "{\n  \"mx\": {\"vars\": {\"my-var\": 1}, \"hosts\": [\"a\"]}\n}\n",
        file,
        &VarMap::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/srv/fleet/inv.json:2:19: variable name 'my-var'"),
        "{e}"
    );
    let e = parse("{\"mx\": 5}", file, &VarMap::new()).unwrap_err();
    assert!(e.to_string().starts_with("/srv/fleet/inv.json:1:"), "{e}");
    let e = parse(
        "{\"mx\": {\"hosts\": [\"a\"]}, \"_meta\": {\"hosts\": []}}",
        file,
        &VarMap::new(),
    )
    .unwrap_err();
    assert!(e.message.contains("`_meta` holds `hostvars` only"), "{e}");
}

#[test]
fn json_in_the_yaml_shape_is_read_as_yaml() {
    let inv = parse(
        r#"{"all": {"children": {"mx": {"hosts": {"mx1": {"x": 1}, "mx2": null}}}}}"#,
        Path::new("/srv/fleet/inv.json"),
        &VarMap::new(),
    )
    .unwrap();
    assert_eq!(order(&inv), ["mx1", "mx2"]);
    assert_eq!(host(&inv, "mx1").vars["x"], json!(1));
}

// ---- format detection

#[test]
fn the_format_comes_from_the_content() {
    use super::load::{detect, Format};
    for (text, want) in [
        ("all:\n  hosts:\n", Format::Yaml),
        ("# comment\n\n---\nall:\n", Format::Yaml),
        ("%YAML 1.2\n---\n", Format::Yaml),
        ("\"all\":\n", Format::Yaml),
        ("mx: {hosts: {a: }}\n", Format::Yaml),
        ("- a\n", Format::Yaml),
        ("", Format::Yaml),
        ("{\n  \"all\": {}\n}\n", Format::Json),
        ("# c\n[mx]\nh\n", Format::Ini(None)),
        ("[mx:vars] # c\n", Format::Ini(None)),
        ("; ini comment\nh\n", Format::Ini(None)),
        ("\n  bastion ansible_host=10.0.0.1\n", Format::Ini(Some(2))),
        ("mx1:2222\n", Format::Ini(Some(1))),
        ("mx1\n", Format::Ini(Some(1))),
        ("[mx vars]\n", Format::Ini(Some(1))),
        ("#!/usr/bin/env python3\n", Format::Script),
    ] {
        assert_eq!(detect(text), want, "{text:?}");
    }
}

#[test]
fn a_guessed_format_says_so_and_scripts_are_refused() {
    let e = ini_err("mx1 a=1 b\n");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("read as an INI inventory"),
        "{e}"
    );
    let e = parse("all:\n  hosts:\n   - a\n", Path::new(INI), &VarMap::new()).unwrap_err();
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("read as a YAML inventory"),
        "{e}"
    );
    let e = parse(
        "#!/bin/sh\necho {}\n",
        Path::new("/srv/fleet/ec2.py"),
        &VarMap::new(),
    )
    .unwrap_err();
    assert_eq!(
        e.pos,
        Some(crate::error::SourcePos::new(
            Path::new("/srv/fleet/ec2.py"),
            1,
            1
        ))
    );
    assert!(e.message.contains("inventory script"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("ansible-inventory -i /srv/fleet/ec2.py --list"),
        "{e}"
    );
}

// ---- files: several sources, directories, group_vars/ and host_vars/

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn load_paths(paths: &[PathBuf]) -> Inventory {
    load_all(paths, &VarMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn several_sources_merge_later_wins_and_order_follows_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.yml",
        "mx:\n  vars: {level: a, only_a: 1}\n  hosts:\n    mx2:\n    mx1: {x: a}\n",
    );
    let b = write(
        dir.path(),
        "b.ini",
        "[mx]\nmx3\nmx1 x=b\n[mx:vars]\nlevel=b\n",
    );
    let inv = load_paths(&[a.clone(), b.clone()]);
    assert_eq!(order(&inv), ["mx2", "mx1", "mx3"]);
    assert_eq!(inv.groups["mx"], ["mx2", "mx1", "mx3"]);
    assert_eq!(host(&inv, "mx2").vars["level"], json!("b"));
    assert_eq!(host(&inv, "mx3").vars["only_a"], json!(1));
    assert_eq!(host(&inv, "mx1").vars["x"], json!("b"));
    assert_eq!(inv.sources, [a.clone(), b.clone()]);
    // the other way round
    let inv = load_paths(&[b, a]);
    assert_eq!(order(&inv), ["mx3", "mx1", "mx2"]);
    assert_eq!(host(&inv, "mx1").vars["x"], json!("a"));
    assert_eq!(host(&inv, "mx3").vars["level"], json!("a"));
}

#[test]
fn an_ini_group_from_an_earlier_source_may_get_vars_and_children() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yml", "mx:\n  hosts: {mx1: }\n");
    let b = write(dir.path(), "b.ini", "[mx:vars]\nx=1\n[eu:children]\nmx\n");
    let inv = load_paths(&[a, b.clone()]);
    assert_eq!(host(&inv, "mx1").groups, ["all", "eu", "mx"]);
    assert_eq!(host(&inv, "mx1").vars["x"], json!(1));
    // alone, the INI file names an undefined group
    let e = load_all(&[b], &VarMap::new()).unwrap_err();
    assert!(e.message.contains("undefined group 'mx'"), "{e}");
}

#[test]
fn a_directory_reads_its_files_by_name_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "20-db.ini", "[db]\ndb1\n");
    write(d, "10-mx.yml", "mx:\n  hosts: {mx1: }\n");
    write(d, "sub/30-more.json", r#"{"edge": ["edge1"]}"#);
    write(d, "15-sub/a.yml", "web:\n  hosts: {web1: }\n");
    for skipped in [
        ".hidden",
        "notes.md",
        "readme.txt",
        "x.bak",
        "x~",
        "x.retry",
        "x.cfg",
        "x.orig",
        "x.swp",
        "x.pyc",
        "x.rst",
        "x.rpm",
    ] {
        write(d, skipped, "this is not an inventory: {[\n");
    }
    write(d, "group_vars/mx.yml", "level: gv\n");
    write(d, "host_vars/mx1.yml", "mine: 1\n");
    // a link back up is not followed round and round
    std::os::unix::fs::symlink(d, d.join("sub/loop")).unwrap();
    let inv = load_paths(&[d.to_path_buf()]);
    assert_eq!(order(&inv), ["mx1", "web1", "db1", "edge1"]);
    // a directory source's group_vars/ and host_vars/ are its own
    assert_eq!(host(&inv, "mx1").vars["level"], json!("gv"));
    assert_eq!(host(&inv, "mx1").vars["mine"], json!(1));
    // an empty directory has no hosts
    let empty = tempfile::tempdir().unwrap();
    let e = load_all(&[empty.path().to_path_buf()], &VarMap::new()).unwrap_err();
    assert!(e.message.contains("defines no hosts"), "{e}");
    let e = load_all(&[PathBuf::new()], &VarMap::new()).unwrap_err();
    assert!(e.message.contains("empty"), "{e}");
}

/// Ansible's default order, lowest first: all in inventory < groups in inventory <
/// group_vars/all < group_vars/GROUP < host in inventory < host_vars/HOST < -e.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_where_files_are_listed_is_an_error_not_a_read_that_never_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "10-mx.ini", "[mx]\nmx1\n");
    mkfifo(&d.join("20-pipe"));
    let e = load_all(&[d.to_path_buf()], &VarMap::new()).unwrap_err();
    assert!(
        e.message
            .contains("20-pipe is a FIFO, socket or device, not a file"),
        "{e}"
    );
    std::fs::remove_file(d.join("20-pipe")).unwrap();
    std::fs::create_dir(d.join("group_vars")).unwrap();
    mkfifo(&d.join("group_vars/mx"));
    let e = load_all(&[d.to_path_buf()], &VarMap::new()).unwrap_err();
    assert!(e.message.contains("group_vars/mx is a FIFO"), "{e}");
    std::fs::remove_file(d.join("group_vars/mx")).unwrap();
    write(d, "group_vars/mx/a.yml", "level: a\n");
    mkfifo(&d.join("group_vars/mx/b.yml"));
    let e = load_all(&[d.to_path_buf()], &VarMap::new()).unwrap_err();
    assert!(e.message.contains("group_vars/mx/b.yml is a FIFO"), "{e}");
}

#[test]
fn a_group_vars_directory_reached_again_through_a_link_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "hosts.ini", "[mx]\nmx1\n");
    write(d, "group_vars/all/10-a.yml", "level: a\n");
    write(d, "group_vars/all/20-b.yml", "other: b\n");
    // two links back up: followed, the walk would go down 2^40 ways
    std::os::unix::fs::symlink(".", d.join("group_vars/all/l1")).unwrap();
    std::os::unix::fs::symlink(".", d.join("group_vars/all/l2")).unwrap();
    let inv = load_paths(&[d.join("hosts.ini")]);
    assert_eq!(host(&inv, "mx1").vars["level"], json!("a"));
    assert_eq!(host(&inv, "mx1").vars["other"], json!("b"));
}

#[test]
fn vars_files_precedence_as_ansible() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inv_path = write(
        d,
        "hosts.yml",
        "all:\n  vars: {v1: inv-all, v2: inv-all, v3: inv-all, v4: inv-all, v5: inv-all, v6: inv-all}\n\
         \x20 children:\n    mx:\n      vars: {v2: inv-mx, v3: inv-mx, v4: inv-mx, v5: inv-mx, v6: inv-mx}\n\
         \x20     hosts:\n        mx1: {v5: inv-host, v6: inv-host}\n        mx2:\n",
    );
    write(
        d,
        "group_vars/all.yml",
        "v1: gv-all\nv3: gv-all\nv4: gv-all\nv5: gv-all\nv6: gv-all\n",
    );
    write(d, "group_vars/mx", "v4: gv-mx\nv5: gv-mx\nv6: gv-mx\n");
    write(d, "group_vars/mx.yml", "v4: never-read\n"); // `mx` without extension comes first
    write(d, "host_vars/mx1.yaml", "v6: hv\n");
    write(d, "host_vars/nosuchhost.yml", "this: [is not read\n");
    write(d, "group_vars/nosuchgroup.yml", "this: [is not read\n");
    let inv = load_paths(std::slice::from_ref(&inv_path));
    let vars = &host(&inv, "mx1").vars;
    assert_eq!(
        vars["v1"],
        json!("gv-all"),
        "group_vars/all beats inventory all"
    );
    assert_eq!(vars["v2"], json!("inv-mx"));
    assert_eq!(
        vars["v3"],
        json!("gv-all"),
        "group_vars/all beats inventory groups"
    );
    assert_eq!(vars["v4"], json!("gv-mx"));
    assert_eq!(
        vars["v5"],
        json!("inv-host"),
        "inventory host vars beat group_vars"
    );
    assert_eq!(
        vars["v6"],
        json!("hv"),
        "host_vars beat inventory host vars"
    );
    assert_eq!(host(&inv, "mx2").vars["v5"], json!("gv-mx"));
    let mut extra = VarMap::new();
    extra.insert("v6".into(), json!("cli"));
    let inv = load_all(&[inv_path], &extra).unwrap();
    assert_eq!(host(&inv, "mx1").vars["v6"], json!("cli"));
}

#[test]
fn vars_directories_deeper_groups_and_connection_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inv_path = write(
        d,
        "hosts.ini",
        "[mx]\nmx1 ssh_user=inline\n[eu:children]\nmx\n[eu:vars]\nansible_user=eu-inv\n",
    );
    write(d, "group_vars/eu/10-a.yml", "level: eu\nwho: a\n");
    write(d, "group_vars/eu/20-b", "who: b\n");
    write(d, "group_vars/eu/sub/30-c.json", "{\"deep\": true}\n");
    write(d, "group_vars/eu/.hidden.yml", "who: hidden\n");
    write(d, "group_vars/eu/x.yml~", "who: backup\n");
    write(d, "group_vars/eu/notes.txt", "who: txt\n");
    write(
        d,
        "group_vars/mx.json",
        "{\"level\": \"mx\", \"ansible_ssh_private_key_file\": \"keys/mx\"}\n",
    );
    write(
        d,
        "host_vars/mx1/main.yml",
        "ansible_user: from-host-vars\n",
    );
    let inv = load_paths(&[inv_path]);
    let mx1 = host(&inv, "mx1");
    assert_eq!(mx1.vars["who"], json!("b"));
    assert_eq!(mx1.vars["deep"], json!(true));
    assert_eq!(
        mx1.vars["level"],
        json!("mx"),
        "the deeper group's file wins"
    );
    // host_vars' ansible_user is above the inline ssh_user (host in inventory)
    let user = mx1.connection.user.as_ref().unwrap();
    assert_eq!(user.value, "from-host-vars");
    assert!(
        user.from.contains("host_vars/mx1/main.yml:1:"),
        "{}",
        user.from
    );
    // a relative path is taken from the directory of the file that set it
    let keys = mx1.connection.key_files.as_ref().unwrap();
    assert_eq!(keys.value, [d.join("group_vars/keys/mx")]);
}

#[test]
fn vars_files_errors_have_positions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inv_path = write(d, "hosts.ini", "mx1\n");
    let bad = write(d, "host_vars/mx1.yml", "a: 1\na: 2\n");
    let e = load_all(std::slice::from_ref(&inv_path), &VarMap::new()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:2:1: duplicate key 'a'", bad.display())),
        "{e}"
    );
    std::fs::write(&bad, "- a\n").unwrap();
    let e = load_all(std::slice::from_ref(&inv_path), &VarMap::new()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:1:1:", bad.display())),
        "{e}"
    );
    std::fs::write(&bad, "my-var: 1\n").unwrap();
    let e = load_all(std::slice::from_ref(&inv_path), &VarMap::new()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:1:1: variable name", bad.display())),
        "{e}"
    );
    std::fs::write(&bad, "$ANSIBLE_VAULT;1.1;AES256\n6162\n").unwrap();
    let e = load_all(std::slice::from_ref(&inv_path), &VarMap::new()).unwrap_err();
    assert!(e.message.contains("ansible-vault"), "{e}");
    // an inline !vault value, even nested, would otherwise be its ciphertext as text
    for (text, at) in [
        (
            "plain: 1\nrelay_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n",
            "3:3",
        ),
        (
            "sasl:\n  users:\n    - !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      6162\n",
            "2:3",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let e = load_all(std::slice::from_ref(&inv_path), &VarMap::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}:{at}: `", bad.display())),
            "{e}"
        );
        assert!(
            e.message.contains("encrypted with ansible-vault (!vault)"),
            "{e}"
        );
    }
    let e = parse(
        "all:\n  vars:\n    x: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      6162\n  hosts: {h: }\n",
        Path::new("/srv/fleet/hosts.yml"),
        &VarMap::new(),
    )
    .unwrap_err();
    assert!(e.message.contains("`x` is encrypted"), "{e}");
    // empty files are fine
    std::fs::write(&bad, "# nothing yet\n").unwrap();
    load_paths(&[inv_path]);
}

#[test]
fn group_vars_beside_each_source_later_source_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write(d, "a/hosts.ini", "[mx]\nmx1\n");
    write(d, "a/group_vars/mx.yml", "x: a\ny: a\n");
    let b = write(d, "b/hosts.ini", "[mx]\nmx2\n");
    write(d, "b/group_vars/mx.yml", "x: b\n");
    write(d, "b/group_vars/all.yml", "y: b-all\n");
    let inv = load_paths(&[a, b]);
    assert_eq!(host(&inv, "mx1").vars["x"], json!("b"));
    // group_vars/mx of a beats group_vars/all of b
    assert_eq!(host(&inv, "mx1").vars["y"], json!("a"));
}

#[test]
fn extra_vars_paths_are_taken_from_the_first_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write(d, "a/hosts.ini", "mx1\n");
    let mut extra = VarMap::new();
    extra.insert("ssh_key_file".into(), json!("k"));
    let inv = load_all(&[a], &extra).unwrap();
    assert_eq!(
        inv.hosts[0].connection.key_files.as_ref().unwrap().value,
        [d.join("a/k")]
    );
}

// ---- ansible_connection

#[test]
fn ansible_connection_other_than_ssh_is_kept_and_refused_on_use() {
    let inv = ini("\
web1 ansible_connection=ssh
web2 ansible_connection=paramiko
local1 ansible_connection=local
[all:vars]
ansible_python_interpreter=/usr/bin/python3
");
    assert!(host(&inv, "web1").check_reachable().is_ok());
    assert!(host(&inv, "web2").check_reachable().is_ok());
    let local = host(&inv, "local1");
    assert_eq!(
        local.connection.unsupported.as_ref().unwrap().setting.value,
        "local"
    );
    let e = local.check_reachable().unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        format!("{INI}:3:27: host local1: ansible_connection=local is not supported: postfleet reaches hosts over SSH only")
    );
    assert!(e.hint.unwrap().contains("--limit"));
    assert_eq!(
        local.vars["ansible_python_interpreter"],
        json!("/usr/bin/python3")
    );
    // from -e: no position, and it says so
    let mut extra = VarMap::new();
    extra.insert("ansible_connection".into(), json!("docker"));
    let inv = parse("h\n", Path::new(INI), &extra).unwrap();
    let e = inv.hosts[0].check_reachable().unwrap_err();
    assert_eq!(e.pos, None);
    assert!(
        e.message
            .contains("ansible_connection=docker (set with -e)"),
        "{e}"
    );
}
