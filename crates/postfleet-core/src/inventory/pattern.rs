//! Host patterns, as in Ansible: `all`, `*`, host and group names, globs, `a:b` / `a,b`
//! (union), `a:&b` (intersection), `a:!b` / `!b` (exclusion).

use super::{Host, Inventory};
use crate::error::InputError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Intersect,
    Exclude,
}

#[derive(Debug, Clone)]
enum Matcher {
    All,
    /// A host or group name.
    Name(String),
    Glob(glob::Pattern),
}

#[derive(Debug, Clone)]
struct Term {
    op: Op,
    /// The term as written, without its `&` / `!`.
    text: String,
    matcher: Matcher,
}

/// A parsed host pattern.
#[derive(Debug, Clone)]
pub struct HostPattern {
    text: String,
    terms: Vec<Term>,
}

impl HostPattern {
    /// Parses `text`; the error says what is wrong with it (the caller adds where it was).
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let mut terms = Vec::new();
        for raw in split_terms(text) {
            let raw = raw.trim();
            let (op, name) = if let Some(rest) = raw.strip_prefix('!') {
                (Op::Exclude, rest.trim_start())
            } else if let Some(rest) = raw.strip_prefix('&') {
                (Op::Intersect, rest.trim_start())
            } else {
                (Op::Union, raw)
            };
            if name.is_empty() {
                return Err(format!(
                    "host pattern '{text}' has an empty part; separate names with ':' or ','"
                ));
            }
            if name.starts_with('~') {
                return Err(format!(
                    "host pattern '{text}': regular expressions ('~') are not supported; use globs like 'mx*'"
                ));
            }
            let matcher = if name == "all" || name == "*" {
                Matcher::All
            } else if name.contains(['*', '?', '[']) {
                let glob = glob::Pattern::new(name)
                    .map_err(|err| format!("host pattern '{text}': bad glob '{name}': {err}"))?;
                Matcher::Glob(glob)
            } else {
                Matcher::Name(name.to_string())
            };
            terms.push(Term {
                op,
                text: name.to_string(),
                matcher,
            });
        }
        if terms.is_empty() {
            return Err("the host pattern is empty; use 'all' for every host".into());
        }
        Ok(HostPattern {
            text: text.to_string(),
            terms,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `host` is selected: it matches a union term (or there is none), every
    /// intersection term and no exclusion term.
    pub fn matches(&self, host: &Host) -> bool {
        let mut has_union = false;
        let mut in_union = false;
        for term in &self.terms {
            let hit = term.matches(host);
            match term.op {
                Op::Union => {
                    has_union = true;
                    in_union |= hit;
                }
                Op::Intersect if !hit => return false,
                Op::Exclude if hit => return false,
                _ => {}
            }
        }
        in_union || !has_union
    }

    /// The selected hosts in inventory order; names that match nothing select nothing.
    pub fn select<'a>(&self, inventory: &'a Inventory) -> Vec<&'a Host> {
        inventory.hosts.iter().filter(|h| self.matches(h)).collect()
    }
}

impl Term {
    fn matches(&self, host: &Host) -> bool {
        match &self.matcher {
            Matcher::All => true,
            Matcher::Name(name) => host.name == *name || host.groups.iter().any(|g| g == name),
            Matcher::Glob(glob) => {
                glob.matches(&host.name) || host.groups.iter().any(|g| glob.matches(g))
            }
        }
    }

    /// Whether the term names something in the inventory (an empty group counts).
    fn is_known(&self, inventory: &Inventory) -> bool {
        match &self.matcher {
            Matcher::All => true,
            Matcher::Name(name) => {
                inventory.groups.contains_key(name)
                    || inventory.hosts.iter().any(|h| h.name == *name)
            }
            Matcher::Glob(glob) => {
                inventory.groups.keys().any(|g| glob.matches(g))
                    || inventory.hosts.iter().any(|h| glob.matches(&h.name))
            }
        }
    }
}

/// Splits on ',' and ':' outside brackets (`h[1:3]` stays whole).
fn split_terms(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' | ':' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    // A trailing separator ("a,") is harmless; an empty part elsewhere is an error.
    if parts.len() > 1 && parts.last().is_some_and(|p| p.trim().is_empty()) {
        parts.pop();
    }
    parts
}

/// Strict selection for `--limit`: every part of the pattern must name a host or group
/// and the result must not be empty.
pub fn select<'a>(inventory: &'a Inventory, pattern: &str) -> Result<Vec<&'a Host>, InputError> {
    let parsed = HostPattern::parse(pattern).map_err(InputError::new)?;
    if let Some(unknown) = parsed.terms.iter().find(|t| !t.is_known(inventory)) {
        return Err(
            InputError::new(format!("no host matches '{}'", unknown.text))
                .hint(known_names(inventory)),
        );
    }
    let hosts = parsed.select(inventory);
    if hosts.is_empty() {
        return Err(
            InputError::new(format!("host pattern '{pattern}' selects no host"))
                .hint(known_names(inventory)),
        );
    }
    Ok(hosts)
}

fn known_names(inventory: &Inventory) -> String {
    const SHOWN: usize = 10;
    let groups: Vec<&str> = inventory.groups.keys().map(String::as_str).collect();
    let hosts: Vec<&str> = inventory
        .hosts
        .iter()
        .take(SHOWN)
        .map(|h| h.name.as_str())
        .collect();
    let more = inventory.hosts.len().saturating_sub(SHOWN);
    let mut hint = format!(
        "known groups: {}; hosts: {}",
        groups.join(", "),
        hosts.join(", ")
    );
    if more > 0 {
        hint.push_str(&format!(" and {more} more"));
    }
    hint
}
