use super::*;
use crate::model::{DesiredFile, MasterEntry, MasterService, ServiceType};

fn name(n: &str) -> InstanceName {
    InstanceName::parse(n).unwrap()
}

fn instance() -> DesiredInstance {
    let mut inst = DesiredInstance::new(name("postfix-bulk"));
    inst.main_cf_params
        .insert("relayhost".into(), Some(" [10.0.0.1]:25 ".into()));
    inst.main_cf_params
        .insert("smtp_sasl_password_maps".into(), Some("static:u:pw".into()));
    inst.main_cf_params.insert("mydestination".into(), None);
    inst.master_services.push(MasterService {
        service: "slow".into(),
        kind: ServiceType::Unix,
        entry: Some(MasterEntry {
            private: "-".into(),
            unpriv: "-".into(),
            chroot: "n".into(),
            wakeup: "-".into(),
            maxproc: "-".into(),
            command: "smtp".into(),
            args: vec!["-o".into(), "syslog_name=bulk/slow".into()],
        }),
    });
    inst.files.push(DesiredFile {
        path: "/etc/postfix-bulk/transport".into(),
        content: b"orange.fr slow:\n".to_vec(),
        mode: 0o640,
        map_type: None,
        secret: false,
    });
    inst
}

fn record(items: Vec<(Key, Value)>) -> Record {
    Record {
        at: 1_764_583_200,
        generation: 7,
        by: "root@bastion".into(),
        items,
    }
}

#[test]
fn a_record_reads_back_as_it_was_written() {
    let items = desired_items(&instance()).unwrap();
    let written = record(items);
    let text = written.render();
    assert!(text.starts_with(MAGIC));
    assert_eq!(Record::parse(&text), Some(written));
    // anything else is no record: nothing is compared with it
    assert_eq!(Record::parse("hello\n"), None);
    assert_eq!(Record::parse(&text.replace("param\t", "parm\t")), None);
}

#[test]
fn desired_items_hold_values_and_hide_secrets() {
    let items = desired_items(&instance()).unwrap();
    let get = |key: Key| {
        items
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get(Key::Param("relayhost".into())),
        Some(Value::Shown("[10.0.0.1]:25".into()))
    );
    assert_eq!(get(Key::Param("mydestination".into())), Some(Value::Absent));
    let Some(Value::Hidden(sum)) = get(Key::Param("smtp_sasl_password_maps".into())) else {
        panic!("a secret-looking parameter is recorded by its checksum only");
    };
    assert!(!Record {
        items: items.clone(),
        ..record(vec![])
    }
    .render()
    .contains("pw"));
    assert_eq!(sum.len(), 64);
    assert_eq!(
        get(Key::Service("slow/unix".into())),
        Some(Value::Shown(
            "slow unix - - n - - smtp -o syslog_name=bulk/slow".into()
        ))
    );
    assert!(matches!(
        get(Key::File("/etc/postfix-bulk/transport".into())),
        Some(Value::File { mode: 0o640, .. })
    ));
    // an instance wanted absent keeps no record
    let mut gone = instance();
    gone.state = InstanceState::Absent;
    assert_eq!(desired_items(&gone), None);
}

fn facts_with(main: &str, master: &str, transport: Option<(&[u8], u32)>) -> HostFacts {
    let mut facts = crate::facts::parse("end\n").unwrap();
    facts.instances.insert(
        name("postfix-bulk"),
        crate::facts::InstanceFacts {
            name: name("postfix-bulk"),
            group: None,
            enabled: true,
            config_dir: "/etc/postfix-bulk".into(),
            main_cf: Some(main.into()),
            master_cf: Some(master.into()),
            running: true,
            queue_size: Some(0),
            pending: None,
        },
    );
    facts.files.insert(
        "/etc/postfix-bulk/transport".into(),
        crate::facts::FileFacts {
            content: transport.map(|(c, _)| c.to_vec()),
            mode: transport.map(|(_, m)| m),
            map_fresh: None,
        },
    );
    facts
}

const MAIN: &str = "relayhost = [10.0.0.1]:25\nsmtp_sasl_password_maps = static:u:pw\n";
const MASTER: &str = "slow unix - - n - - smtp\n  -o syslog_name=bulk/slow\n";

#[test]
fn a_host_as_the_apply_left_it_has_no_drift() {
    let rec = record(desired_items(&instance()).unwrap());
    let facts = facts_with(MAIN, MASTER, Some((b"orange.fr slow:\n", 0o640)));
    assert_eq!(detect(&name("postfix-bulk"), &rec, &facts), vec![]);
}

#[test]
fn every_setting_changed_by_hand_is_drift_with_what_it_was_and_is() {
    let rec = record(desired_items(&instance()).unwrap());
    let main =
        "relayhost = [10.9.9.9]:25\nsmtp_sasl_password_maps = static:u:other\nmydestination = x\n";
    let master = "slow unix - - n - 5 smtp\n";
    let facts = facts_with(main, master, Some((b"orange.fr smtp:\n", 0o666)));
    let drift = detect(&name("postfix-bulk"), &rec, &facts);
    let keys: Vec<String> = drift.iter().map(|d| d.key.describe()).collect();
    assert_eq!(
        keys,
        [
            "main.cf `mydestination`",
            "main.cf `relayhost`",
            "main.cf `smtp_sasl_password_maps`",
            "master.cf `slow/unix`",
            "file /etc/postfix-bulk/transport",
        ]
    );
    let relay = &drift[1];
    assert_eq!(
        relay.message("mx03"),
        "main.cf `relayhost` of postfix-bulk on mx03 changed outside postfleet since the apply \
         of 2025-12-01 10:00:00 UTC (run 7, by root@bastion): was [10.0.0.1]:25, now [10.9.9.9]:25"
    );
    assert_eq!(drift[0].was_shown(), "unset");
    // a secret is never shown, before or after
    let secret = drift[2].message("mx03");
    assert!(secret.contains("was (hidden), now (hidden)"), "{secret}");
    assert!(!secret.contains("pw") && !secret.contains("other"));
    assert!(drift[4].now_shown().starts_with("mode 666, sha256 "));
}

#[test]
fn a_file_or_instance_gone_is_drift_too() {
    let rec = record(desired_items(&instance()).unwrap());
    let mut facts = facts_with(MAIN, MASTER, None);
    let drift = detect(&name("postfix-bulk"), &rec, &facts);
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].now_shown(), "missing");
    facts.instances.clear();
    let drift = detect(&name("postfix-bulk"), &rec, &facts);
    // relayhost, the secret and the service are unset now; mydestination was unset already
    assert_eq!(drift.len(), 4, "{drift:?}");
}

#[test]
fn a_template_owned_main_cf_records_every_parameter_it_sets() {
    let mut inst = DesiredInstance::new(name("postfix-bulk"));
    inst.main_cf = Some("myhostname = a.example\nrelayhost = old\n".into());
    inst.main_cf_params
        .insert("relayhost".into(), Some("[r]:25".into()));
    let items = desired_items(&inst).unwrap();
    assert_eq!(
        items,
        [
            (
                Key::Param("myhostname".into()),
                Value::Shown("a.example".into())
            ),
            (
                Key::Param("relayhost".into()),
                Value::Shown("[r]:25".into())
            ),
        ]
    );
}

#[test]
fn times_read_as_utc_dates() {
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(utc(1_796_083_199), "2026-11-30 23:59:59 UTC");
}

#[test]
fn record_files_name_their_instance() {
    for n in ["-", "postfix-bulk"] {
        assert_eq!(
            instance_of_record_file(&record_file(&name(n))),
            Some(name(n))
        );
    }
    assert_eq!(instance_of_record_file("postfix-"), None);
    assert_eq!(instance_of_record_file("-"), None);
}

/// The probe reads only the files today's playbook owns: a recorded file the playbook no
/// longer owns is not looked at, so it is no drift (a playbook change is none); one it still
/// owns that is gone is.
#[test]
fn a_file_the_playbook_no_longer_owns_is_not_drift() {
    let rec = record(desired_items(&instance()).unwrap());
    let mut facts = facts_with(MAIN, MASTER, None);
    facts.files.clear();
    assert_eq!(detect(&name("postfix-bulk"), &rec, &facts), vec![]);
}

/// A `secret: true` file shows no checksum of its content in a drift message or the JSON
/// (only its mode), before or after; the record on the host keeps the checksum to compare.
#[test]
fn a_secret_file_shows_no_checksum() {
    let mut inst = instance();
    inst.files[0].secret = true;
    inst.files[0].mode = 0o600;
    let rec = record(desired_items(&inst).unwrap());
    assert_eq!(Record::parse(&rec.render()), Some(rec.clone()));
    let facts = facts_with(MAIN, MASTER, Some((b"orange.fr smtp:\n", 0o600)));
    let drift = detect(&name("postfix-bulk"), &rec, &facts);
    assert_eq!(drift.len(), 1, "{drift:?}");
    let Value::File { sha256, .. } = &drift[0].now else {
        panic!("{drift:?}");
    };
    let message = drift[0].message("mx03");
    assert!(
        message.ends_with("was mode 600, content (hidden), now mode 600, content (hidden)"),
        "{message}"
    );
    for shown in [message, drift[0].was_shown(), drift[0].now_shown()] {
        assert!(
            !shown.contains(&sha256[..6]) && !shown.contains("sha256"),
            "{shown}"
        );
    }
    // as the apply left it: no drift
    let facts = facts_with(MAIN, MASTER, Some((b"orange.fr slow:\n", 0o600)));
    assert_eq!(detect(&name("postfix-bulk"), &rec, &facts), vec![]);
}
