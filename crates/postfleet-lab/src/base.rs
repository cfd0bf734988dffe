//! Base trees: one Debian root file system per release, shared read-only by every host of
//! that release (the lower layer of their overlays). Built once with debootstrap from the
//! machine's own apt mirror, cached under a name that holds the release and a hash of its
//! recipe, so a changed recipe builds a new one.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::host::HOST_PATH;
use super::state::{cache_dir, labs_dir, LabState, Release};
use super::sys;

const VARIANT: &str = "minbase";
const INCLUDE: &str = "openssh-server,sudo,python3,iproute2,procps,netbase,\
                       systemd,systemd-sysv,dbus,libpam-systemd";
const RECIPE: &str = include_str!("base-recipe.sh");

/// Short hash of everything that shapes a release's tree.
pub fn recipe_hash(release: Release) -> String {
    let mut h = Sha256::new();
    for part in [release.suite(), VARIANT, INCLUDE, RECIPE] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn base_dir(release: Release) -> PathBuf {
    cache_dir().join(format!("base-{}-{}", release.suite(), recipe_hash(release)))
}

/// The base tree of `release` for the current recipe, built first if missing. Returns (dir,
/// was built now).
pub fn ensure_base(release: Release) -> Result<(PathBuf, bool)> {
    let dir = base_dir(release);
    if dir.is_dir() {
        return Ok((dir, false));
    }
    sys::require_tool("debootstrap", "debootstrap")?;
    sys::require_tool("unshare", "util-linux")?;
    let cache = cache_dir();
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let _lock = sys::lock_file(&cache.join(".base.lock"))?;
    if dir.is_dir() {
        return Ok((dir, false)); // another lab built it while we waited
    }
    remove_unfinished_builds(&cache)?;
    let mirror = apt_mirror(release)?;
    let suite = release.suite();
    let name = format!("base-{suite}-{}", recipe_hash(release));
    let tmp = cache.join(format!(".building-{name}"));
    let log_path = cache.join(format!("{name}.log"));
    println!(
        "base: building {} from {mirror} (first use only; a few minutes; log: {})",
        dir.display(),
        log_path.display()
    );
    let log =
        File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;

    let debootstrap = [
        OsString::from("debootstrap"),
        format!("--variant={VARIANT}").into(),
        format!("--include={INCLUDE}").into(),
        suite.into(),
        tmp.clone().into(),
        mirror.into(),
    ];
    run_build_step(&debootstrap, None, &log, &log_path)?;

    let recipe_in_tree = tmp.join("tmp/postfleet-base-recipe.sh");
    fs::write(&recipe_in_tree, RECIPE)
        .with_context(|| format!("cannot write {}", recipe_in_tree.display()))?;
    let recipe = ["/bin/sh", "/tmp/postfleet-base-recipe.sh"].map(OsString::from);
    run_build_step(&recipe, Some(&tmp), &log, &log_path)?;
    fs::remove_file(&recipe_in_tree)?;

    fs::rename(&tmp, &dir)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dir.display()))?;
    let current: Vec<PathBuf> = Release::ALL.iter().map(|r| base_dir(*r)).collect();
    for old in unused_bases(&cache, &current, &labs_dir()) {
        println!("base: removing {}, made by an older recipe", old.display());
        sys::remove_tree(&old)?;
        let _ = fs::remove_file(old.with_extension("log"));
    }
    Ok((dir, true))
}

/// Base trees other than the `current` ones (one per release) that no lab's host refers to.
fn unused_bases(cache: &Path, current: &[PathBuf], labs: &Path) -> Vec<PathBuf> {
    let in_use: Vec<PathBuf> = fs::read_dir(labs)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("lab.json")).ok())
        .filter_map(|text| serde_json::from_slice::<LabState>(&text).ok())
        .flat_map(|state| state.hosts.into_iter().map(|h| h.base))
        .collect();
    fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("base-"))
                && !current.contains(p)
                && !in_use.contains(p)
        })
        .collect()
}

/// Runs a build step (chrooted into `root` if given) as PID 1 of its own PID and mount
/// namespaces: whatever it mounts disappears with it, and if `lab up` is interrupted the whole
/// step dies with it (unshare's --kill-child, and the death signal of unshare itself), so no
/// stray dpkg keeps writing into a tree the next build deletes.
fn run_build_step(
    args: &[OsString],
    root: Option<&Path>,
    log: &File,
    log_path: &Path,
) -> Result<()> {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
    ]);
    if let Some(root) = root {
        cmd.arg(format!("--root={}", root.display()));
    }
    cmd.arg("--")
        .args(args)
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is async-signal-safe, touching no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", sys::describe(&cmd)))?;
    if !status.success() {
        bail!(
            "building the base tree failed: {} ({status}); last lines of {}:\n{}",
            sys::describe(&cmd),
            log_path.display(),
            sys::tail(log_path, 15)
        );
    }
    Ok(())
}

/// A build killed half way leaves a `.building-*` tree: never used, removed here.
fn remove_unfinished_builds(cache: &Path) -> Result<()> {
    for entry in fs::read_dir(cache)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(".building-") {
            for m in sys::mounts_under(&path) {
                sys::unmount(&m)?;
            }
            sys::remove_tree(&path)?;
        }
    }
    Ok(())
}

/// The machine's own Debian mirror for `release`, from its apt sources (env
/// POSTFLEET_APT_MIRROR overrides). A mirror that serves one Debian release serves the others.
pub fn apt_mirror(release: Release) -> Result<String> {
    if let Ok(m) = std::env::var("POSTFLEET_APT_MIRROR") {
        if !m.is_empty() {
            return Ok(m);
        }
    }
    let mut sources = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok().map(|e| e.path())));
    }
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => sources.extend(parse_deb822(&text)),
            Some("list") => sources.extend(parse_one_line_style(&text)),
            _ => {}
        }
    }
    pick_mirror(&sources, release.suite()).ok_or_else(|| {
        anyhow::anyhow!(
            "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/; \
             set POSTFLEET_APT_MIRROR to a mirror URL that serves {}",
            release.suite()
        )
    })
}

/// (URI, suites) of one apt source.
type Source = (String, Vec<String>);

fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Option<String> {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let types = field("Types").unwrap_or_default();
        let enabled = field("Enabled").unwrap_or_else(|| "yes".into());
        if !types.split_whitespace().any(|t| t == "deb") || enabled == "no" {
            continue;
        }
        let suites: Vec<String> = field("Suites")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        for uri in field("URIs").unwrap_or_default().split_whitespace() {
            out.push((uri.to_string(), suites.clone()));
        }
    }
    out
}

fn parse_one_line_style(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut word = words.next();
        if word.is_some_and(|w| w.starts_with('[')) {
            while let Some(w) = word {
                word = words.next();
                if w.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (word, words.next()) {
            out.push((uri.to_string(), vec![suite.to_string()]));
        }
    }
    out
}

/// Prefers a source that carries `suite` itself; else any non-security source.
fn pick_mirror(sources: &[Source], suite: &str) -> Option<String> {
    sources
        .iter()
        .find(|(_, suites)| suites.iter().any(|s| s == suite))
        .or_else(|| {
            sources.iter().find(|(uri, suites)| {
                !uri.contains("security") && suites.iter().all(|s| !s.contains("security"))
            })
        })
        .map(|(uri, _)| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_picks_the_bookworm_source() {
        let text =
            "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\n\
                    Suites: bookworm-security\nComponents: main\n";
        let sources = parse_deb822(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            pick_mirror(&sources, "bookworm").as_deref(),
            Some("http://mirror.invalid/debian")
        );
    }

    #[test]
    fn one_line_style_with_options() {
        let text =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.invalid/debian bookworm main\n\
                    deb-src http://m.invalid/debian bookworm main\n";
        assert_eq!(
            parse_one_line_style(text),
            vec![(
                "http://m.invalid/debian".to_string(),
                vec!["bookworm".to_string()]
            )]
        );
    }

    #[test]
    fn other_releases_fall_back_to_a_non_security_mirror() {
        // A machine whose sources name bookworm only still serves a trixie lab.
        let sources = vec![
            (
                "http://m.invalid/debian-security".to_string(),
                vec!["bookworm-security".to_string()],
            ),
            (
                "http://m.invalid/debian".to_string(),
                vec!["bookworm".to_string()],
            ),
        ];
        assert_eq!(
            pick_mirror(&sources, "trixie").as_deref(),
            Some("http://m.invalid/debian")
        );
    }

    #[test]
    fn only_bases_no_lab_uses_are_unused() {
        let cache = tempfile::tempdir().unwrap();
        let labs = tempfile::tempdir().unwrap();
        let current = cache.path().join("base-trixie-new");
        let other_release = cache.path().join("base-bookworm-new");
        let used = cache.path().join("base-bookworm-used");
        let unused = cache.path().join("base-trixie-old");
        for dir in [&current, &other_release, &used, &unused] {
            fs::create_dir(dir).unwrap();
        }
        fs::write(cache.path().join("base-trixie-old.log"), "").unwrap();
        fs::create_dir(labs.path().join("x")).unwrap();
        let state = format!(
            r#"{{"name":"x","subnet":"10.77.9.0/24","gateway":"10.77.9.1","hosts":[
                {{"name":"h1","index":1,"address":"10.77.9.11","mode":"systemd",
                  "release":"bookworm","base":"{}"}}]}}"#,
            used.display()
        );
        fs::write(labs.path().join("x/lab.json"), state).unwrap();
        assert_eq!(
            unused_bases(cache.path(), &[current, other_release], labs.path()),
            vec![unused]
        );
    }

    #[test]
    fn each_release_has_its_own_short_stable_hash() {
        assert_eq!(recipe_hash(Release::Trixie), recipe_hash(Release::Trixie));
        assert_eq!(recipe_hash(Release::Trixie).len(), 16);
        assert_ne!(recipe_hash(Release::Trixie), recipe_hash(Release::Bookworm));
        assert!(base_dir(Release::Bookworm)
            .ends_with(format!("base-bookworm-{}", recipe_hash(Release::Bookworm))));
    }
}
