//! Assembling an inventory whatever its format: the front ends (YAML, INI, JSON) declare
//! groups, children, hosts and variables with where they were written; the group_vars/ and
//! host_vars/ files add theirs; [`Builder::finish`] resolves every host (groups, merged
//! variables, connection).
//!
//! Order: hosts and groups come in the order they first appear, files in the order they were
//! read (several `-i`, a directory's files by name), then by line and column.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::connection::{connection, MergedVars, Origin};
use super::{Host, Inventory, VarMap};
use crate::error::{InputError, SourcePos};

/// What every inventory format can hold, for the hint of an empty inventory.
pub(crate) const FORMATS_HINT: &str = "an inventory is YAML (`all:` and other groups with `hosts:`, `children:` and `vars:`), INI (`[group]` sections of host lines, `[group:children]`, `[group:vars]`) or the JSON of `ansible-inventory --list`";

/// A group, by its index; `all` is created first.
pub(crate) type GroupId = usize;
/// A host, by its index.
pub(crate) type HostId = usize;
/// The `all` group.
pub(crate) const ALL: GroupId = 0;

/// A variable as written, with where its value was written.
#[derive(Debug, Clone)]
pub(crate) struct VarDef {
    pub name: String,
    pub value: Value,
    pub pos: SourcePos,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    /// Where the group first appears; `None` for `all` (unless written) and the implicit
    /// `ungrouped`.
    first: Option<SourcePos>,
    parents: Vec<GroupId>,
    hosts: Vec<HostId>,
    /// From inventory files, in the order written.
    vars: Vec<VarDef>,
    /// From `group_vars/` beside inventory source N, by N.
    file_vars: BTreeMap<usize, Vec<VarDef>>,
}

#[derive(Debug)]
struct HostEntry {
    name: String,
    first: SourcePos,
    direct_groups: Vec<GroupId>,
    vars: Vec<VarDef>,
    /// From `host_vars/` beside inventory source N, by N.
    file_vars: BTreeMap<usize, Vec<VarDef>>,
}

#[derive(Debug)]
pub(crate) struct Builder {
    groups: Vec<GroupEntry>,
    group_index: HashMap<String, GroupId>,
    hosts: Vec<HostEntry>,
    host_index: HashMap<String, HostId>,
    /// Files in the order they were read: the first key of every ordering.
    file_order: HashMap<PathBuf, usize>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        let all = GroupEntry {
            name: "all".into(),
            first: None,
            parents: Vec::new(),
            hosts: Vec::new(),
            vars: Vec::new(),
            file_vars: BTreeMap::new(),
        };
        Builder {
            groups: vec![all],
            group_index: HashMap::from([("all".to_string(), ALL)]),
            hosts: Vec::new(),
            host_index: HashMap::new(),
            file_order: HashMap::new(),
        }
    }

    /// Says that `file` is read next: what it declares comes after what earlier files did.
    pub(crate) fn start_file(&mut self, file: &Path) {
        let next = self.file_order.len();
        self.file_order.entry(file.to_path_buf()).or_insert(next);
    }

    /// Declares group `name` (first written at `at`), or finds it.
    pub(crate) fn group(&mut self, name: &str, at: &SourcePos) -> Result<GroupId, InputError> {
        check_name(name, "group").map_err(|e| e.at(at.clone()))?;
        if let Some(&g) = self.group_index.get(name) {
            let first = &mut self.groups[g].first;
            if first.is_none() {
                *first = Some(at.clone());
            }
            return Ok(g);
        }
        self.groups.push(GroupEntry {
            name: name.to_string(),
            first: Some(at.clone()),
            parents: Vec::new(),
            hosts: Vec::new(),
            vars: Vec::new(),
            file_vars: BTreeMap::new(),
        });
        self.group_index
            .insert(name.to_string(), self.groups.len() - 1);
        Ok(self.groups.len() - 1)
    }

    /// The group called `name`, if declared.
    pub(crate) fn find_group(&self, name: &str) -> Option<GroupId> {
        self.group_index.get(name).copied()
    }

    /// The name of `group`.
    pub(crate) fn group_name(&self, group: GroupId) -> &str {
        &self.groups[group].name
    }

    /// The host called `name`, if declared.
    pub(crate) fn find_host(&self, name: &str) -> Option<HostId> {
        self.host_index.get(name).copied()
    }

    /// Makes `child` a child of `parent`; `at` is where the child was named.
    pub(crate) fn child(
        &mut self,
        parent: GroupId,
        child: GroupId,
        at: &SourcePos,
    ) -> Result<(), InputError> {
        if child == ALL {
            return Err(InputError::new("'all' cannot be a child group")
                .at(at.clone())
                .hint("every host is in 'all' already; put its hosts and vars under the top-level `all:` (INI: [all:vars])"));
        }
        if !self.groups[child].parents.contains(&parent) {
            self.groups[child].parents.push(parent);
        }
        Ok(())
    }

    /// Declares host `name` (written at `at`) as a member of `group`.
    pub(crate) fn host(
        &mut self,
        group: GroupId,
        name: &str,
        at: &SourcePos,
    ) -> Result<HostId, InputError> {
        check_name(name, "host").map_err(|e| e.at(at.clone()))?;
        let h = match self.host_index.get(name) {
            Some(&h) => h,
            None => {
                self.hosts.push(HostEntry {
                    name: name.to_string(),
                    first: at.clone(),
                    direct_groups: Vec::new(),
                    vars: Vec::new(),
                    file_vars: BTreeMap::new(),
                });
                self.host_index
                    .insert(name.to_string(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        // A host is in few groups: its own list says whether the group has it, where the
        // group's (as long as the inventory) would make declaring N hosts N² steps.
        if !self.hosts[h].direct_groups.contains(&group) {
            self.hosts[h].direct_groups.push(group);
            self.groups[group].hosts.push(h);
        }
        Ok(h)
    }

    /// [`Builder::host`] for a host written `NAME:PORT`: the port (an `ansible_port` def)
    /// is the host's only where the host is first declared, as Ansible's `add_host` has it:
    /// a later `NAME:OTHER` leaves it as it was.
    pub(crate) fn host_with_port(
        &mut self,
        group: GroupId,
        name: &str,
        at: &SourcePos,
        port: &VarDef,
    ) -> Result<HostId, InputError> {
        let new = !self.host_index.contains_key(name);
        let h = self.host(group, name, at)?;
        if new {
            self.hosts[h].vars.push(port.clone());
        }
        Ok(h)
    }

    /// A variable of `group` from an inventory file; a later one of the same name wins.
    pub(crate) fn group_var(&mut self, group: GroupId, def: VarDef) {
        self.groups[group].vars.push(def);
    }

    /// A variable of `host` from an inventory file; a later one of the same name wins.
    pub(crate) fn host_var(&mut self, host: HostId, def: VarDef) {
        self.hosts[host].vars.push(def);
    }

    /// The variables of `group_vars/GROUP` beside inventory source `source`.
    pub(crate) fn group_file_vars(&mut self, source: usize, group: GroupId, defs: Vec<VarDef>) {
        self.groups[group]
            .file_vars
            .entry(source)
            .or_default()
            .extend(defs);
    }

    /// The variables of `host_vars/HOST` beside inventory source `source`.
    pub(crate) fn host_file_vars(&mut self, source: usize, host: HostId, defs: Vec<VarDef>) {
        self.hosts[host]
            .file_vars
            .entry(source)
            .or_default()
            .extend(defs);
    }

    /// Every group's name, by id.
    pub(crate) fn group_names(&self) -> impl Iterator<Item = (GroupId, &str)> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, e)| (g, e.name.as_str()))
    }

    /// Every host's name, by id.
    pub(crate) fn host_names(&self) -> impl Iterator<Item = (HostId, &str)> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(h, e)| (h, e.name.as_str()))
    }

    /// The ordering key of a position: file read order, line, column.
    fn order_of(&self, pos: &SourcePos) -> (usize, usize, usize) {
        let file = self
            .file_order
            .get(&pos.file)
            .copied()
            .unwrap_or(usize::MAX);
        (file, pos.line, pos.column)
    }

    /// Group depths (all = 0; a group is one deeper than its deepest parent). A walk with
    /// its own stack: a chain of `children:` may be as long as the inventory.
    fn depths(&self) -> Result<Vec<usize>, InputError> {
        let mut depth: Vec<Option<usize>> = vec![None; self.groups.len()];
        let mut on_path = vec![false; self.groups.len()];
        for start in 0..self.groups.len() {
            if depth[start].is_some() {
                continue;
            }
            on_path[start] = true;
            // (group, index of the next parent to look at)
            let mut stack = vec![(start, 0)];
            while let Some((g, next)) = stack.pop() {
                let parents = &self.groups[g].parents;
                let Some(&parent) = parents.get(next) else {
                    // every parent is done: they were walked before coming back here
                    depth[g] = Some(
                        parents
                            .iter()
                            .filter_map(|&p| depth[p])
                            .max()
                            .map_or(0, |d| d + 1),
                    );
                    on_path[g] = false;
                    continue;
                };
                stack.push((g, next + 1));
                if depth[parent].is_some() {
                    continue;
                }
                if on_path[parent] {
                    let group = &self.groups[parent];
                    let mut error = InputError::new(format!(
                        "group '{}' is its own ancestor (a loop through `children:`)",
                        group.name
                    ))
                    .hint("a group may not contain, directly or not, a group that contains it");
                    error.pos = group.first.clone();
                    return Err(error);
                }
                on_path[parent] = true;
                stack.push((parent, 0));
            }
        }
        Ok(depth.into_iter().map(|d| d.unwrap_or(0)).collect())
    }

    /// As Ansible reconciles an inventory: a group without a parent is a child of `all`; a
    /// host in no group but `all` is in `ungrouped`, and a host in another group is not.
    pub(crate) fn reconcile(&mut self) {
        for g in 1..self.groups.len() {
            if self.groups[g].parents.is_empty() {
                self.groups[g].parents.push(ALL);
            }
        }
        let ungrouped = self.group_index.get("ungrouped").copied();
        if let Some(u) = ungrouped {
            let mut leaving = vec![false; self.hosts.len()];
            for (h, host) in self.hosts.iter_mut().enumerate() {
                let groups = &mut host.direct_groups;
                if groups.iter().any(|&g| g != ALL && g != u) && groups.contains(&u) {
                    groups.retain(|&g| g != u);
                    leaving[h] = true;
                }
            }
            self.groups[u].hosts.retain(|&h| !leaving[h]);
        }
        let lonely: Vec<HostId> = (0..self.hosts.len())
            .filter(|&h| self.hosts[h].direct_groups.iter().all(|&g| g == ALL))
            .collect();
        if lonely.is_empty() {
            return;
        }
        let u = match ungrouped {
            Some(u) => u,
            None => {
                self.groups.push(GroupEntry {
                    name: "ungrouped".into(),
                    first: None,
                    parents: vec![ALL],
                    hosts: Vec::new(),
                    vars: Vec::new(),
                    file_vars: BTreeMap::new(),
                });
                self.group_index
                    .insert("ungrouped".into(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        for h in lonely {
            self.groups[u].hosts.push(h);
            self.hosts[h].direct_groups.push(u);
        }
    }

    /// Resolves every host. `sources` are the inventory sources as given (their count orders
    /// the group_vars/ and host_vars/ layers); `extra_vars` (from `-e`) override everything,
    /// and their relative paths are taken from `extra_base`.
    pub(crate) fn finish(
        mut self,
        sources: Vec<PathBuf>,
        extra_vars: &VarMap,
        extra_base: &Path,
    ) -> Result<Inventory, InputError> {
        if self.hosts.is_empty() {
            let mut error = InputError::new("the inventory defines no hosts").hint(FORMATS_HINT);
            if let Some(first) = sources.first() {
                error.pos = Some(if first.is_dir() {
                    SourcePos::new(first, 0, 0)
                } else {
                    SourcePos::new(first, 1, 1)
                });
            }
            return Err(error);
        }
        self.reconcile();
        let depths = self.depths()?;
        // Order of first appearance; the implicit `ungrouped` comes last.
        let order_key = |g: GroupId| match &self.groups[g].first {
            Some(pos) => self.order_of(pos),
            None => (usize::MAX, usize::MAX, usize::MAX),
        };
        let mut host_order: Vec<HostId> = (0..self.hosts.len()).collect();
        host_order.sort_by_key(|&h| self.order_of(&self.hosts[h].first));

        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut members: Vec<Vec<String>> = vec![Vec::new(); self.groups.len()];
        for &h in &host_order {
            let entry = &self.hosts[h];
            let mut groups = self.ancestors_and_self(&entry.direct_groups);
            groups.sort_by_key(|&g| (depths[g], order_key(g)));
            for &g in &groups {
                members[g].push(entry.name.clone());
            }
            let merged = self.merge_vars(entry, &groups, sources.len(), extra_vars);
            let connection = connection(&entry.name, &merged, extra_base)?;
            hosts.push(Host {
                name: entry.name.clone(),
                groups: groups
                    .iter()
                    .map(|&g| self.groups[g].name.clone())
                    .collect(),
                vars: merged.into_iter().map(|(k, (v, _))| (k, v)).collect(),
                connection,
            });
        }
        let groups = self
            .groups
            .iter()
            .zip(members)
            .map(|(group, names)| (group.name.clone(), names))
            .collect();
        Ok(Inventory {
            sources,
            hosts,
            groups,
        })
    }

    /// The given groups and all their ancestors, `all` included, each once.
    fn ancestors_and_self(&self, direct: &[GroupId]) -> Vec<GroupId> {
        let mut seen = vec![false; self.groups.len()];
        let mut stack: Vec<GroupId> = direct.to_vec();
        stack.push(ALL);
        let mut out = Vec::new();
        while let Some(g) = stack.pop() {
            if std::mem::replace(&mut seen[g], true) {
                continue;
            }
            out.push(g);
            stack.extend(&self.groups[g].parents);
        }
        out
    }

    /// Ansible's default precedence, lowest first: `all`'s vars in inventory files < other
    /// groups' (by depth, then order) < group_vars/all < group_vars/GROUP (source by source,
    /// each by depth then order) < the host's vars in inventory files < host_vars/HOST <
    /// extra vars. `groups` is sorted, `all` first. Each step is one layer: our connection
    /// names and Ansible's are ranked by it.
    fn merge_vars(
        &self,
        host: &HostEntry,
        groups: &[GroupId],
        sources: usize,
        extra_vars: &VarMap,
    ) -> MergedVars {
        let mut layers: Vec<&[VarDef]> = Vec::new();
        for &g in groups {
            layers.push(&self.groups[g].vars);
        }
        layers.extend(self.groups[ALL].file_vars.values().map(Vec::as_slice));
        for source in 0..sources {
            for &g in groups.iter().filter(|&&g| g != ALL) {
                if let Some(defs) = self.groups[g].file_vars.get(&source) {
                    layers.push(defs);
                }
            }
        }
        layers.push(&host.vars);
        layers.extend(host.file_vars.values().map(Vec::as_slice));

        let mut merged = MergedVars::new();
        for (layer, defs) in layers.iter().enumerate() {
            for def in *defs {
                let origin = Origin {
                    pos: Some(def.pos.clone()),
                    layer,
                };
                merged.insert(def.name.clone(), (def.value.clone(), origin));
            }
        }
        let extra_layer = layers.len();
        for (name, value) in extra_vars {
            let origin = Origin {
                pos: None,
                layer: extra_layer,
            };
            merged.insert(name.clone(), (value.clone(), origin));
        }
        merged
    }
}

/// Host and group names: something a pattern can name.
fn check_name(name: &str, what: &str) -> Result<(), InputError> {
    let bad = name.is_empty()
        || name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, ',' | '!' | '&' | '*' | '?' | '[' | ']')
        });
    if bad {
        return Err(InputError::new(format!("invalid {what} name '{name}'"))
            .hint("names may not be empty or contain spaces, ',', '!', '&', '*', '?', '[' or ']' (except a host range like mx[01:10])"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_children_as_long_as_the_inventory_has_its_depths_without_deep_recursion() {
        // g0 > g1 > ... > gN, declared deepest first: the walk starts at the bottom.
        const N: usize = 200_000;
        let at = SourcePos::new(Path::new("/srv/fleet/hosts.ini"), 1, 1);
        let mut b = Builder::new();
        let mut child = b.group(&format!("g{N}"), &at).unwrap();
        b.host(child, "h", &at).unwrap();
        for i in (0..N).rev() {
            let parent = b.group(&format!("g{i}"), &at).unwrap();
            b.child(parent, child, &at).unwrap();
            child = parent;
        }
        b.reconcile();
        let depths = b.depths().unwrap();
        assert_eq!(depths[b.find_group(&format!("g{N}")).unwrap()], N + 1);
        assert_eq!(depths[b.find_group("g0").unwrap()], 1);
        assert_eq!(depths[ALL], 0);
    }

    #[test]
    fn a_loop_of_children_is_an_error_at_the_group() {
        let at = |line| SourcePos::new(Path::new("/srv/fleet/hosts.ini"), line, 1);
        let mut b = Builder::new();
        let a = b.group("a", &at(1)).unwrap();
        let bb = b.group("b", &at(2)).unwrap();
        let c = b.group("c", &at(3)).unwrap();
        b.child(a, bb, &at(4)).unwrap();
        b.child(bb, c, &at(5)).unwrap();
        b.child(c, a, &at(6)).unwrap();
        let e = b.depths().unwrap_err();
        assert!(e.message.contains("is its own ancestor"), "{e}");
        assert!(e.to_string().starts_with("/srv/fleet/hosts.ini:"), "{e}");
    }
}
