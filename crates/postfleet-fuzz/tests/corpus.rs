//! Every input kept for the fuzz targets goes through them again on each `cargo test`: the
//! named seeds (`fuzz/seeds/TARGET/`), the minimised corpus of past runs
//! (`fuzz/corpus/TARGET/`) and every input that once made a target panic
//! (`fuzz/regressions/TARGET/`, kept after the fix). A panic fails the test.

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn the_kept_corpus_and_every_past_crash_run_clean() {
    let repo = postfleet_fuzz::repo();
    for (name, target) in postfleet_fuzz::TARGETS {
        let seeds = inputs(&repo.join("fuzz/seeds").join(name));
        assert!(seeds.len() >= 3, "fuzz/seeds/{name}: the seeds are missing");
        let corpus = inputs(&repo.join("fuzz/corpus").join(name));
        assert!(
            corpus.len() >= 100,
            "fuzz/corpus/{name} holds {} inputs: the kept corpus is missing",
            corpus.len()
        );
        let regressions = inputs(&repo.join("fuzz/regressions").join(name));
        for file in seeds.iter().chain(&corpus).chain(&regressions) {
            let data = std::fs::read(file).unwrap();
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name}: {} panics", file.display());
        }
    }
}

/// The seeds are real inputs: each reaches the end of its parser (a seed that stopped being
/// valid would leave the fuzzer starting from nothing).
#[test]
fn the_seeds_are_accepted_by_their_parsers() {
    use postfleet_core::inventory::{self, VarMap};
    let repo = postfleet_fuzz::repo();
    for seed in [
        "example.yml",
        "ranges.yml",
        "lab.yml",
        "fleet.ini",
        "list.json",
    ] {
        let path = repo.join("fuzz/seeds/inventory").join(seed);
        let text = std::fs::read_to_string(&path).unwrap();
        inventory::parse(&text, &path, &VarMap::new()).unwrap_or_else(|e| panic!("{seed}: {e}"));
    }
    for seed in ["newsletter.yml", "apply-site.yml", "faults-site.yml"] {
        let text = std::fs::read_to_string(repo.join("fuzz/seeds/playbook").join(seed)).unwrap();
        postfleet_core::playbook::parse(&text, &repo.join("playbooks/seed.yml"))
            .unwrap_or_else(|e| panic!("{seed}: {e}"));
    }
    for seed in [
        "probe-h1-fresh.txt",
        "probe-h1-converged.txt",
        "probe-h1-interrupted.txt",
        "probe-h3-fresh.txt",
        "probe-h4-fresh.txt",
    ] {
        let text = std::fs::read_to_string(repo.join("fuzz/seeds/facts").join(seed)).unwrap();
        let facts = postfleet_core::facts::parse(&text).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert_eq!(
            facts.needs_recovery(),
            seed.contains("interrupted"),
            "{seed}"
        );
    }
}
