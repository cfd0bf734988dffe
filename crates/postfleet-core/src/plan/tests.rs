//! The planner's cases: fresh host, converged host, drift, absent <-> present, listeners.

use std::collections::BTreeMap;

use super::*;
use crate::facts::{
    ActiveState, FileFacts, HostFacts, InitSystem, InstanceFacts, Owed, UnitFileState, UnitState,
    UnitTemplate,
};
use crate::model::*;

/// Nothing to do and nothing refused (what the CLI reports as "in sync").
trait Converged {
    fn is_converged(&self) -> bool;
}

impl Converged for Plan {
    fn is_converged(&self) -> bool {
        self.steps.is_empty() && self.refusals.is_empty()
    }
}

const DEFAULT_MAIN: &str = "myhostname = h1.lab.test\ninet_interfaces = all\n";
const MULTI_MAIN: &str = "myhostname = h1.lab.test\ninet_interfaces = all\nmulti_instance_wrapper = ${command_directory}/postmulti -p --\nmulti_instance_enable = yes\n";
const MASTER: &str = "smtp      inet  n       -       y       -       -       smtpd\npickup    unix  n       -       y       60      1       pickup\n";

fn name(n: &str) -> InstanceName {
    InstanceName::parse(n).unwrap()
}

fn newsletter() -> DesiredInstance {
    let mut i = DesiredInstance::new(name("postfix-news"));
    i.main_cf_params
        .insert("relayhost".into(), Some("[10.0.0.1]:2527".into()));
    i.master_services.push(MasterService {
        service: "slow".into(),
        kind: crate::model::ServiceType::Unix,
        entry: Some(MasterEntry {
            private: "-".into(),
            unpriv: "-".into(),
            chroot: "n".into(),
            wakeup: "-".into(),
            maxproc: "-".into(),
            command: "smtp".into(),
            args: vec![],
        }),
    });
    i.files.push(DesiredFile {
        path: "/etc/postfix-news/transport".into(),
        content: b"orange.fr slow:\n".to_vec(),
        mode: 0o644,
        map_type: Some(crate::model::MapType::new("hash")),
        secret: false,
    });
    i
}

fn instance_facts(n: &str, main: &str, master: &str, running: bool) -> InstanceFacts {
    InstanceFacts {
        name: name(n),
        group: None,
        enabled: true,
        config_dir: name(n).config_dir(),
        main_cf: Some(main.into()),
        master_cf: Some(master.into()),
        running,
        queue_size: Some(0),
        pending: None,
    }
}

fn unit(active: &str, file_state: &str) -> UnitState {
    UnitState {
        active: ActiveState::parse(active),
        file_state: UnitFileState::parse(file_state),
        oneshot: false,
        loaded: true,
    }
}

/// A stock Debian 12 host: the default instance only, running under systemd.
fn fresh_host() -> HostFacts {
    let mut instances = BTreeMap::new();
    instances.insert(name("-"), instance_facts("-", DEFAULT_MAIN, MASTER, true));
    let mut units = BTreeMap::new();
    units.insert("postfix@-.service".into(), unit("active", "enabled"));
    units.insert(
        "postfix@postfix-news.service".into(),
        unit("inactive", "disabled"),
    );
    units.insert(
        "postfix.service".into(),
        UnitState {
            oneshot: true,
            ..unit("active", "enabled")
        },
    );
    let template_units = [("-", "postfix@-"), ("postfix-news", "postfix@postfix-news")]
        .into_iter()
        .map(|(n, u)| (name(n), u.to_string()))
        .collect();
    HostFacts {
        generation: 0,
        postfix_version: Some("3.7.11".into()),
        init: InitSystem::Systemd,
        template: UnitTemplate::PostmultiName("postmulti -i %i".into()),
        template_units,
        instances,
        unlisted_dirs: BTreeMap::new(),
        units,
        files: BTreeMap::new(),
        interrupted: Vec::new(),
        leftovers: Vec::new(),
        applied: BTreeMap::new(),
    }
}

/// The same host after a successful apply of `newsletter()`.
fn converged_host() -> HostFacts {
    let mut facts = fresh_host();
    facts.instances.get_mut(&name("-")).unwrap().main_cf = Some(MULTI_MAIN.into());
    let desired = newsletter();
    let main = maincf::edit(
        "queue_directory = /var/spool/postfix-news\n",
        [("relayhost", Some("[10.0.0.1]:2527"))],
    );
    let master = mastercf::edit(MASTER, &desired.master_services);
    facts.instances.insert(
        name("postfix-news"),
        instance_facts("postfix-news", &main, &master, true),
    );
    facts.units.insert(
        "postfix@postfix-news.service".into(),
        unit("active", "enabled"),
    );
    facts.files.insert(
        "/etc/postfix-news/transport".into(),
        FileFacts {
            content: Some(b"orange.fr slow:\n".to_vec()),
            mode: Some(0o644),
            map_fresh: Some(true),
        },
    );
    facts
}

fn actions(plan: &Plan) -> Vec<String> {
    plan.steps.iter().map(Step::title).collect()
}

fn host(instances: Vec<DesiredInstance>) -> DesiredHost {
    DesiredHost { instances }
}

#[test]
fn fresh_host_gets_init_create_config_enable_start() {
    let plan = plan(
        &host(vec![newsletter()]),
        &fresh_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(
        actions(&plan),
        [
            "postmulti init",
            "postfix-news: create instance",
            // tables first: main.cf may name them, and is validated with them
            "postfix-news: file /etc/postfix-news/transport",
            "postfix-news: main.cf",
            "postfix-news: master.cf",
            "postfix-news: enable instance",
            // no daemon-reload of its own: `systemctl enable` reloads
            "postfix-news: enable unit",
            "postfix-news: start",
        ]
    );
    // a new instance's main.cf edit carries every parameter
    let Action::WriteMainCf(edit) = &plan.steps[3].action else {
        panic!("expected main.cf step")
    };
    assert_eq!(
        edit.params,
        [("relayhost".to_string(), Some("[10.0.0.1]:2527".to_string()))]
    );
}

#[test]
fn a_new_instance_whose_unit_is_already_enabled_gets_a_daemon_reload() {
    let mut facts = fresh_host();
    facts.units.insert(
        "postfix@postfix-news.service".into(),
        unit("inactive", "enabled"),
    );
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    let titles = actions(&plan);
    let reload = titles.iter().position(|t| t == "systemd daemon-reload");
    let start = titles.iter().position(|t| t == "postfix-news: start");
    assert!(reload.is_some() && reload < start, "{titles:?}");
    assert!(
        !titles.iter().any(|t| t.ends_with("enable unit")),
        "{titles:?}"
    );
}

#[test]
fn converged_host_has_no_steps() {
    let plan = plan(
        &host(vec![newsletter()]),
        &converged_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert!(
        plan.is_converged(),
        "unexpected steps: {:?}",
        actions(&plan)
    );
}

#[test]
fn one_drifted_parameter_is_set_and_reloaded() {
    let mut facts = converged_host();
    let news = facts.instances.get_mut(&name("postfix-news")).unwrap();
    news.main_cf = Some(maincf::edit(
        news.main_cf.as_deref().unwrap(),
        [("relayhost", Some("[10.9.9.9]"))],
    ));
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(
        actions(&plan),
        ["postfix-news: main.cf", "postfix-news: reload"]
    );
    let change = &plan.steps[0].changes[0];
    assert!(change
        .old
        .as_deref()
        .unwrap()
        .contains("relayhost = [10.9.9.9]"));
    assert!(change.new.contains("relayhost = [10.0.0.1]:2527"));
}

#[test]
fn drifted_table_is_rewritten_without_reload() {
    let mut facts = converged_host();
    facts
        .files
        .get_mut("/etc/postfix-news/transport")
        .unwrap()
        .content = Some(b"x\n".to_vec());
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    // hash tables are reopened by the daemons: no reload
    assert_eq!(
        actions(&plan),
        ["postfix-news: file /etc/postfix-news/transport"]
    );
}

#[test]
fn stale_index_is_rebuilt() {
    let mut facts = converged_host();
    facts
        .files
        .get_mut("/etc/postfix-news/transport")
        .unwrap()
        .map_fresh = Some(false);
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(
        actions(&plan),
        ["postfix-news: postmap /etc/postfix-news/transport"]
    );
}

#[test]
fn listener_change_needs_a_restart() {
    let mut desired = newsletter();
    desired.master_services.push(MasterService {
        service: "127.0.0.1:2525".into(),
        kind: crate::model::ServiceType::Inet,
        entry: Some(MasterEntry {
            private: "n".into(),
            unpriv: "-".into(),
            chroot: "n".into(),
            wakeup: "-".into(),
            maxproc: "-".into(),
            command: "smtpd".into(),
            args: vec![],
        }),
    });
    let plan = plan(
        &host(vec![desired]),
        &converged_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(
        actions(&plan),
        ["postfix-news: master.cf", "postfix-news: restart"]
    );
}

#[test]
fn inet_interfaces_change_needs_a_restart() {
    let mut desired = newsletter();
    desired
        .main_cf_params
        .insert("inet_interfaces".into(), Some("loopback-only".into()));
    let plan = plan(
        &host(vec![desired]),
        &converged_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(
        actions(&plan),
        ["postfix-news: main.cf", "postfix-news: restart"]
    );
}

#[test]
fn present_to_absent_stops_disables_and_destroys() {
    let mut gone = newsletter();
    gone.state = InstanceState::Absent;
    let plan = plan(&host(vec![gone]), &converged_host(), PlanOptions::default()).unwrap();
    assert_eq!(
        actions(&plan),
        [
            "postfix-news: stop",
            "postfix-news: disable unit",
            "postfix-news: disable instance",
            "postfix-news: destroy instance",
            "systemd daemon-reload",
        ]
    );
}

#[test]
fn absent_with_queued_mail_is_refused_unless_forced() {
    let mut facts = converged_host();
    facts
        .instances
        .get_mut(&name("postfix-news"))
        .unwrap()
        .queue_size = Some(4);
    let mut gone = newsletter();
    gone.state = InstanceState::Absent;
    let refused = plan(&host(vec![gone.clone()]), &facts, PlanOptions::default()).unwrap();
    assert!(refused.steps.is_empty());
    assert!(refused.refusals[0].reason.contains("4 message(s)"));
    let forced = plan(&host(vec![gone]), &facts, PlanOptions { force: true }).unwrap();
    assert!(actions(&forced).contains(&"postfix-news: purge queue".to_string()));
}

#[test]
fn absent_instance_that_does_not_exist_is_converged() {
    let mut gone = newsletter();
    gone.state = InstanceState::Absent;
    assert!(
        plan(&host(vec![gone]), &fresh_host(), PlanOptions::default())
            .unwrap()
            .is_converged()
    );
}

#[test]
fn absent_to_present_after_destroy_recreates() {
    // the converged host, then the instance destroyed by hand: created again
    let mut facts = converged_host();
    facts.instances.remove(&name("postfix-news"));
    facts.files.clear();
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    let titles = actions(&plan);
    assert_eq!(
        titles[0], "postfix-news: create instance",
        "no init: already done"
    );
    assert!(titles.contains(&"postfix-news: start".to_string()));
}

#[test]
fn stopped_instance_is_started_and_owed_reload_is_honoured() {
    let mut facts = converged_host();
    facts
        .instances
        .get_mut(&name("postfix-news"))
        .unwrap()
        .running = false;
    facts.units.insert(
        "postfix@postfix-news.service".into(),
        unit("failed", "enabled"),
    );
    let plan1 = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(actions(&plan1), ["postfix-news: start"]);

    let mut facts = converged_host();
    facts
        .instances
        .get_mut(&name("postfix-news"))
        .unwrap()
        .pending = Some(Owed::Reload);
    let plan2 = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(actions(&plan2), ["postfix-news: reload"]);
}

#[test]
fn plain_host_uses_postmulti_and_no_units() {
    let mut facts = fresh_host();
    facts.init = InitSystem::Other;
    facts.units.clear();
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    let titles = actions(&plan);
    assert!(!titles
        .iter()
        .any(|t| t.contains("unit") || t.contains("daemon-reload")));
    assert_eq!(plan.drivers[&name("postfix-news")], Driver::Postmulti);
    assert_eq!(titles.last().unwrap(), "postfix-news: start");
}

#[test]
fn template_owned_main_cf_is_compared_whole() {
    let mut desired = DesiredInstance::new(name("-"));
    desired.main_cf = Some(DEFAULT_MAIN.into());
    assert!(plan(
        &host(vec![desired.clone()]),
        &fresh_host(),
        PlanOptions::default()
    )
    .unwrap()
    .is_converged());
    desired.main_cf = Some(format!("{DEFAULT_MAIN}# managed\n"));
    let plan = plan(&host(vec![desired]), &fresh_host(), PlanOptions::default()).unwrap();
    assert_eq!(actions(&plan), ["-: main.cf", "-: reload"]);
}

#[test]
fn missing_postfix_is_a_plan_error() {
    let mut facts = fresh_host();
    facts.postfix_version = None;
    assert!(plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).is_err());
}

#[test]
fn apply_scripts_are_valid_shell() {
    let mut gone = newsletter();
    gone.state = InstanceState::Absent;
    let mut drifted = converged_host();
    drifted
        .instances
        .get_mut(&name("postfix-news"))
        .unwrap()
        .main_cf = Some("relayhost = x\n".into());
    let cases = [
        plan(
            &host(vec![newsletter()]),
            &fresh_host(),
            PlanOptions::default(),
        )
        .unwrap(),
        plan(&host(vec![newsletter()]), &drifted, PlanOptions::default()).unwrap(),
        plan(
            &host(vec![gone]),
            &converged_host(),
            PlanOptions { force: true },
        )
        .unwrap(),
    ];
    for p in cases {
        let script = crate::apply::build(
            &p,
            &crate::drift::Stamp {
                at: 0,
                by: "t@c".into(),
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apply.sh");
        std::fs::write(&path, &script).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "sh -n rejects:\n{script}");
        // Every step is one call of a prelude function that reports it: its index first, or
        // (pf_config_moves) after the config dir, one index, message and file per step.
        let reporting = ["pf_do", "pf_write_step", "pf_stop", "pf_activate"];
        for (i, _) in p.steps.iter().enumerate() {
            let index = i.to_string();
            assert!(
                script.lines().any(|line| {
                    let words: Vec<&str> = line
                        .split_whitespace()
                        .map(|w| w.trim_matches('\''))
                        .collect();
                    match words.first() {
                        Some(&"pf_config_moves") => {
                            words.iter().skip(2).step_by(3).any(|w| *w == index)
                        }
                        Some(f) => reporting.contains(f) && words.get(1) == Some(&index.as_str()),
                        None => false,
                    }
                }),
                "step {i} never reports:\n{script}"
            );
        }
    }
}

#[test]
fn a_secret_parameter_never_shows_in_the_diff_of_main_cf() {
    let mut inst = newsletter();
    inst.main_cf_params.insert(
        "smtp_sasl_password_maps".into(),
        Some("static:user:S3CRETPW".into()),
    );
    let p = plan(&host(vec![inst]), &converged_host(), PlanOptions::default()).unwrap();
    let change = p
        .steps
        .iter()
        .flat_map(|s| &s.changes)
        .find(|c| c.path.ends_with("/main.cf"))
        .expect("main.cf changes");
    assert!(
        change.new.contains("S3CRETPW"),
        "the file itself carries it"
    );
    let (old, new) = change.shown().unwrap();
    assert!(
        !old.contains("S3CRETPW") && !new.contains("S3CRETPW"),
        "{new}"
    );
    assert!(
        new.contains("smtp_sasl_password_maps = (hidden, changed)"),
        "{new}"
    );
}

/// The record an apply of `inst` would leave, as the probe reads it back.
fn recorded(inst: &DesiredInstance) -> crate::drift::Record {
    crate::drift::Record {
        at: 100,
        generation: 3,
        by: "root@bastion".into(),
        items: crate::drift::desired_items(inst).unwrap(),
    }
}

/// `converged_host()` with the record the apply that converged it left.
fn recorded_host() -> HostFacts {
    let mut facts = converged_host();
    facts
        .applied
        .insert(name("postfix-news"), recorded(&newsletter()));
    facts
}

/// `recorded_host()` after a hand edit of postfix-news's relayhost.
fn hand_edited_host() -> HostFacts {
    let mut facts = recorded_host();
    facts
        .instances
        .get_mut(&name("postfix-news"))
        .unwrap()
        .main_cf =
        Some("queue_directory = /var/spool/postfix-news\nrelayhost = [10.9.9.9]:25\n".into());
    facts
}

#[test]
fn an_apply_records_what_it_leaves_of_every_instance_it_touches() {
    let plan = plan(
        &host(vec![newsletter()]),
        &fresh_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.records.len(), 1);
    assert_eq!(plan.records[0].instance, name("postfix-news"));
    assert_eq!(
        plan.records[0].items,
        crate::drift::desired_items(&newsletter())
    );
    assert!(
        plan.drift.is_empty(),
        "no record yet: nothing to compare with"
    );
}

#[test]
fn a_converged_host_with_its_record_needs_nothing_not_even_a_record() {
    let facts = recorded_host();
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    assert!(plan.drift.is_empty());
}

#[test]
fn a_converged_host_without_a_record_gets_one_and_no_step() {
    let plan = plan(
        &host(vec![newsletter()]),
        &converged_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert!(plan.steps.is_empty());
    assert_eq!(plan.records.len(), 1);
    let script = crate::apply::build(
        &plan,
        &crate::drift::Stamp {
            at: 9,
            by: "a@b".into(),
        },
    );
    assert!(
        script.contains("pf_applied postfix-news -1 postfix-news"),
        "{script}"
    );
}

#[test]
fn a_hand_edit_is_drift_and_is_put_right() {
    let facts = hand_edited_host();
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(plan.drift.len(), 1);
    assert_eq!(plan.drift[0].was_shown(), "[10.0.0.1]:2527");
    assert_eq!(plan.drift[0].now_shown(), "[10.9.9.9]:25");
    assert_eq!(
        actions(&plan),
        ["postfix-news: main.cf", "postfix-news: reload"]
    );
    assert_eq!(plan.records.len(), 1);
}

#[test]
fn a_playbook_change_is_not_drift() {
    let facts = recorded_host();
    let mut changed = newsletter();
    changed
        .main_cf_params
        .insert("relayhost".into(), Some("[10.0.0.2]:2527".into()));
    let plan = plan(&host(vec![changed]), &facts, PlanOptions::default()).unwrap();
    assert!(plan.drift.is_empty());
    assert_eq!(
        actions(&plan),
        ["postfix-news: main.cf", "postfix-news: reload"]
    );
}

#[test]
fn a_refused_instance_keeps_its_old_record() {
    let mut facts = converged_host();
    facts
        .instances
        .get_mut(&name("postfix-news"))
        .unwrap()
        .queue_size = Some(3);
    let mut gone = newsletter();
    gone.state = InstanceState::Absent;
    let plan = plan(&host(vec![gone]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(plan.refusals.len(), 1, "{plan:?}");
    assert!(plan.records.is_empty());
}

/// A template with parameters set over it: once the host has the result, a run plans
/// nothing (it used to compare the bare template with the live file, which has the
/// parameters too, and wrote main.cf and reloaded at every run).
#[test]
fn a_template_with_parameters_over_it_converges() {
    let mut desired = DesiredInstance::new(name("-"));
    desired.main_cf = Some(DEFAULT_MAIN.into());
    desired
        .main_cf_params
        .insert("relayhost".into(), Some("[x]:25".into()));
    let first = plan(
        &host(vec![desired.clone()]),
        &fresh_host(),
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(actions(&first), ["-: main.cf", "-: reload"]);
    let mut facts = fresh_host();
    facts.instances.get_mut(&name("-")).unwrap().main_cf =
        Some(first.steps[0].changes[0].new.clone());
    let again = plan(&host(vec![desired]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(actions(&again), Vec::<String>::new());
}

/// What an apply killed half-way left in an instance (its transaction still open) is not
/// drift: a check run, which does not recover, reports none for that instance.
#[test]
fn an_interrupted_applys_files_are_not_drift() {
    let mut facts = hand_edited_host();
    let drifted = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert_eq!(drifted.drift.len(), 1);
    facts.interrupted.push("/etc/postfix-news".into());
    let plan = plan(&host(vec![newsletter()]), &facts, PlanOptions::default()).unwrap();
    assert!(plan.drift.is_empty(), "{:?}", plan.drift);
}
