//! The bodies of postfleet's fuzz targets, one per input postfleet parses: the inventory
//! and playbook loaders, host patterns (with ranges), the template renderer and the facts
//! parser (with the planner behind it). The cargo-fuzz targets in `fuzz/` call these; the
//! test in `tests/corpus.rs` replays the kept corpus and every input that once crashed, so
//! a plain `cargo test` holds what fuzzing found.
//!
//! Each body takes arbitrary bytes and may only return: a panic is the bug.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use postfleet_core::inventory::{self, HostPattern, Inventory, VarMap};
use postfleet_core::{facts, plan, playbook, render};

/// What a target runs: arbitrary bytes in, nothing out (a panic is the finding).
pub type Target = fn(&[u8]);

/// The targets by name (the names of `fuzz/fuzz_targets/*.rs` and of the corpus folders).
pub const TARGETS: [(&str, Target); 5] = [
    ("inventory", inventory),
    ("playbook", playbook),
    ("pattern", pattern),
    ("render", render),
    ("facts", facts),
];

/// The repository's top (corpus, the example inventory and playbook).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// An inventory file: parsed, every host selected, shown as `postfleet inventory` would.
pub fn inventory(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(inventory) = inventory::parse(text, Path::new("fuzz.yml"), &VarMap::new()) else {
        return;
    };
    if let Ok(hosts) = inventory::select(&inventory, "all") {
        let hosts: Vec<_> = hosts.into_iter().cloned().collect();
        let _ = inventory::describe(&inventory, &hosts, &|_| serde_json::Value::Null, false);
        let _ = inventory::describe(&inventory, &hosts, &|_| serde_json::Value::Null, true);
    }
}

/// A playbook file (templates are compiled as it loads).
pub fn playbook(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = playbook::parse(text, &repo().join("playbooks/fuzz.yml"));
}

/// The example inventory with ranged host names, for patterns to select from.
fn pattern_inventory() -> &'static Inventory {
    static INVENTORY: OnceLock<Inventory> = OnceLock::new();
    INVENTORY.get_or_init(|| {
        let text = "all:\n  children:\n    mx:\n      hosts:\n        mx[01:12].example.org:\n        \
                    mx-[a:f]:\n    edge:\n      hosts:\n        edge1:\n        mx01.example.org:\n";
        inventory::parse(text, Path::new("fuzz.yml"), &VarMap::new()).expect("fixed inventory")
    })
}

/// A host pattern (`--limit`, a play's `hosts:`): parsed, and matched against an inventory.
pub fn pattern(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(pattern) = HostPattern::parse(text) {
        let _ = pattern.select(pattern_inventory());
    }
    let _ = inventory::select(pattern_inventory(), text);
}

/// A template: the value of a main.cf parameter, rendered for every host of the example
/// inventory with its vars (tera syntax, filters, loops, includes of nothing).
pub fn render(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let play = serde_json::json!([{
        "name": "fuzz",
        "hosts": "all",
        "vars": { "list": ["a", "b"], "n": 3, "nested": { "k": "v" } },
        "instances": [{ "name": "-", "main_cf": { "smtpd_banner": text } }],
    }]);
    let Ok(playbook) = playbook::parse(&play.to_string(), &repo().join("playbooks/fuzz.yml"))
    else {
        return;
    };
    let inventory = pattern_inventory();
    for host in &inventory.hosts {
        let _ = render::render_host(&playbook, inventory, host, &VarMap::new());
    }
}

/// The newsletter playbook rendered for one host: what the facts are planned against.
fn desired() -> &'static postfleet_core::model::DesiredHost {
    static DESIRED: OnceLock<postfleet_core::model::DesiredHost> = OnceLock::new();
    DESIRED.get_or_init(|| {
        let repo = repo();
        let inventory = inventory::load(&repo.join("inventory/example.yml"), &VarMap::new())
            .expect("example inventory");
        let playbook = playbook::load(&repo.join("playbooks/newsletter.yml")).expect("playbook");
        let host = inventory.hosts.first().expect("a host").clone();
        render::render_host(&playbook, &inventory, &host, &VarMap::new()).expect("renders")
    })
}

/// The probe's output: parsed, then planned against the newsletter playbook, and the plan
/// turned into its apply script.
pub fn facts(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(facts) = facts::parse(text) else {
        return;
    };
    for force in [false, true] {
        if let Ok(plan) = plan::plan(desired(), &facts, plan::PlanOptions { force }) {
            let _ = postfleet_core::apply::build(
                &plan,
                &postfleet_core::drift::Stamp {
                    at: 0,
                    by: "fuzz@c".into(),
                },
            );
        }
    }
}
