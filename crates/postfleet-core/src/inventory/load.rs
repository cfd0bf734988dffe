//! Reading an inventory file and resolving each host: its groups, merged variables and
//! connection settings.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::ranges;
use super::yaml::{self, OrderedMap};
use super::{Connection, Host, Inventory, Setting, VarMap};
use crate::error::{InputError, SourcePos};

const SCHEMA_HINT: &str = "an inventory is `all:` (and other groups) with `hosts:`, `children:` and `vars:`; a host maps to its vars or nothing";

/// One group as written: every key optional, anything else is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    #[serde(default)]
    hosts: OrderedMap<OrderedMap<Spanned<Value>>>,
    #[serde(default)]
    children: OrderedMap<Option<GroupDoc>>,
    #[serde(default)]
    vars: OrderedMap<Spanned<Value>>,
}

/// A variable as written, with where it was written.
#[derive(Debug, Clone)]
struct VarDef {
    name: String,
    value: Value,
    pos: SourcePos,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    /// Where the group first appears; `None` for the implicit `ungrouped`.
    first: Option<SourcePos>,
    parents: Vec<usize>,
    hosts: Vec<usize>,
    vars: Vec<VarDef>,
}

#[derive(Debug)]
struct HostEntry {
    name: String,
    first: SourcePos,
    direct_groups: Vec<usize>,
    vars: Vec<VarDef>,
}

/// Where a merged variable's winning value came from: a file position (None: `-e`) and the
/// precedence layer, so our connection names and the `ansible_*` ones can be ranked.
#[derive(Debug, Clone)]
struct Origin {
    pos: Option<SourcePos>,
    layer: usize,
}

type MergedVars = BTreeMap<String, (Value, Origin)>;

/// Reads the inventory at `path` and resolves every host; `extra_vars` (from `-e`) override
/// everything, connection variables included.
pub fn load(path: &Path, extra_vars: &VarMap) -> Result<Inventory, InputError> {
    let text = yaml::read_text(path, "inventory")?;
    parse(&text, path, extra_vars)
}

/// [`load`] on text already read; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path, extra_vars: &VarMap) -> Result<Inventory, InputError> {
    let top: Option<OrderedMap<Option<GroupDoc>>> = yaml::parse(text, path, SCHEMA_HINT)?;
    let top = top.unwrap_or_default();
    if top.0.is_empty() {
        return Err(InputError::new("the inventory defines no hosts")
            .at(SourcePos::new(path, 1, 1))
            .hint(SCHEMA_HINT));
    }
    let mut builder = Builder::new(path);
    for (name, doc) in top.0 {
        let parent = if name.value == "all" { None } else { Some(ALL) };
        builder.add_group(&name, doc, parent)?;
    }
    builder.finish(extra_vars)
}

/// Index of the `all` group, created first.
const ALL: usize = 0;

struct Builder {
    file: PathBuf,
    groups: Vec<GroupEntry>,
    group_index: HashMap<String, usize>,
    hosts: Vec<HostEntry>,
    host_index: HashMap<String, usize>,
}

impl Builder {
    fn new(file: &Path) -> Self {
        let all = GroupEntry {
            name: "all".into(),
            first: Some(SourcePos::new(file, 1, 1)),
            parents: Vec::new(),
            hosts: Vec::new(),
            vars: Vec::new(),
        };
        Builder {
            file: file.to_path_buf(),
            groups: vec![all],
            group_index: HashMap::from([("all".to_string(), ALL)]),
            hosts: Vec::new(),
            host_index: HashMap::new(),
        }
    }

    fn pos(&self, name: &Spanned<String>) -> SourcePos {
        yaml::pos(&self.file, &name.referenced)
    }

    fn add_group(
        &mut self,
        name: &Spanned<String>,
        doc: Option<GroupDoc>,
        parent: Option<usize>,
    ) -> Result<(), InputError> {
        check_name(&name.value, "group").map_err(|e| e.at(self.pos(name)))?;
        if parent.is_some() && name.value == "all" {
            return Err(InputError::new("'all' cannot be a child group")
                .at(self.pos(name))
                .hint("every host is in 'all' already; put its hosts and vars under the top-level `all:`"));
        }
        let index = match self.group_index.get(&name.value) {
            Some(&index) => index,
            None => {
                self.groups.push(GroupEntry {
                    name: name.value.clone(),
                    first: Some(self.pos(name)),
                    parents: Vec::new(),
                    hosts: Vec::new(),
                    vars: Vec::new(),
                });
                self.group_index
                    .insert(name.value.clone(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        if index == ALL {
            // `all:` written at the top: keep its real position for ordering and messages.
            self.groups[ALL].first = Some(self.pos(name));
        }
        if let Some(parent) = parent {
            if !self.groups[index].parents.contains(&parent) {
                self.groups[index].parents.push(parent);
            }
        }
        let Some(doc) = doc else { return Ok(()) };
        for (host_key, vars) in doc.hosts.0 {
            let pos = self.pos(&host_key);
            let names =
                ranges::expand(&host_key.value).map_err(|m| InputError::new(m).at(pos.clone()))?;
            let defs = self.var_defs(vars)?;
            for name in names {
                let host = self.add_host(name, &pos)?;
                if !self.groups[index].hosts.contains(&host) {
                    self.groups[index].hosts.push(host);
                }
                if !self.hosts[host].direct_groups.contains(&index) {
                    self.hosts[host].direct_groups.push(index);
                }
                self.hosts[host].vars.extend(defs.iter().cloned());
            }
        }
        let defs = self.var_defs(doc.vars)?;
        self.groups[index].vars.extend(defs);
        for (child, child_doc) in doc.children.0 {
            self.add_group(&child, child_doc, Some(index))?;
        }
        Ok(())
    }

    fn add_host(&mut self, name: String, pos: &SourcePos) -> Result<usize, InputError> {
        check_name(&name, "host").map_err(|e| e.at(pos.clone()))?;
        if let Some(&index) = self.host_index.get(&name) {
            return Ok(index);
        }
        self.hosts.push(HostEntry {
            name: name.clone(),
            first: pos.clone(),
            direct_groups: Vec::new(),
            vars: Vec::new(),
        });
        self.host_index.insert(name, self.hosts.len() - 1);
        Ok(self.hosts.len() - 1)
    }

    fn var_defs(&self, vars: OrderedMap<Spanned<Value>>) -> Result<Vec<VarDef>, InputError> {
        vars.0
            .into_iter()
            .map(|(name, value)| {
                yaml::check_var_name(&name, &self.file)?;
                Ok(VarDef {
                    pos: yaml::pos(&self.file, &value.referenced),
                    name: name.value,
                    value: value.value,
                })
            })
            .collect()
    }

    /// Group depths (all = 0; a group is one deeper than its deepest parent).
    fn depths(&self) -> Result<Vec<usize>, InputError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Visiting,
            Done(usize),
        }
        fn visit(b: &Builder, g: usize, marks: &mut [Mark]) -> Result<usize, InputError> {
            match marks[g] {
                Mark::Done(depth) => return Ok(depth),
                Mark::Visiting => {
                    let group = &b.groups[g];
                    let mut error = InputError::new(format!(
                        "group '{}' is its own ancestor (a loop through `children:`)",
                        group.name
                    ))
                    .hint("a group may not contain, directly or not, a group that contains it");
                    error.pos = group.first.clone();
                    return Err(error);
                }
                Mark::New => {}
            }
            marks[g] = Mark::Visiting;
            let mut depth = 0;
            for &parent in &b.groups[g].parents {
                depth = depth.max(visit(b, parent, marks)? + 1);
            }
            marks[g] = Mark::Done(depth);
            Ok(depth)
        }
        let mut marks = vec![Mark::New; self.groups.len()];
        (0..self.groups.len())
            .map(|g| visit(self, g, &mut marks))
            .collect()
    }

    fn finish(mut self, extra_vars: &VarMap) -> Result<Inventory, InputError> {
        if self.hosts.is_empty() {
            return Err(InputError::new("the inventory defines no hosts")
                .at(SourcePos::new(&self.file, 1, 1))
                .hint(SCHEMA_HINT));
        }
        // Hosts that belong to no group but `all` form `ungrouped`, as in Ansible.
        let lonely: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| self.hosts[h].direct_groups.iter().all(|&g| g == ALL))
            .collect();
        if !lonely.is_empty() {
            let ungrouped = match self.group_index.get("ungrouped") {
                Some(&g) => g,
                None => {
                    self.groups.push(GroupEntry {
                        name: "ungrouped".into(),
                        first: None,
                        parents: vec![ALL],
                        hosts: Vec::new(),
                        vars: Vec::new(),
                    });
                    self.groups.len() - 1
                }
            };
            for h in lonely {
                self.groups[ungrouped].hosts.push(h);
                self.hosts[h].direct_groups.push(ungrouped);
            }
        }
        let depths = self.depths()?;
        // File order of first appearance; the implicit `ungrouped` comes last.
        let order_key = |g: usize| match &self.groups[g].first {
            Some(pos) => (pos.line, pos.column),
            None => (usize::MAX, usize::MAX),
        };
        let mut host_order: Vec<usize> = (0..self.hosts.len()).collect();
        host_order.sort_by_key(|&h| (self.hosts[h].first.line, self.hosts[h].first.column));

        let base_dir = absolute_dir(&self.file);
        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut members: Vec<Vec<String>> = vec![Vec::new(); self.groups.len()];
        for &h in &host_order {
            let entry = &self.hosts[h];
            let mut groups = self.ancestors_and_self(&entry.direct_groups);
            groups.sort_by_key(|&g| (depths[g], order_key(g)));
            for &g in &groups {
                members[g].push(entry.name.clone());
            }
            let merged = self.merge_vars(entry, &groups, extra_vars);
            let connection = connection(&entry.name, &merged, &base_dir)?;
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
            path: self.file,
            hosts,
            groups,
        })
    }

    /// The given groups and all their ancestors, `all` included, each once.
    fn ancestors_and_self(&self, direct: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.groups.len()];
        let mut stack: Vec<usize> = direct.to_vec();
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

    /// all < groups (by depth, then file order) < host < extra vars; `groups` is sorted.
    fn merge_vars(&self, host: &HostEntry, groups: &[usize], extra_vars: &VarMap) -> MergedVars {
        let mut merged = MergedVars::new();
        let mut put = |defs: &[VarDef], layer: usize| {
            for def in defs {
                let origin = Origin {
                    pos: Some(def.pos.clone()),
                    layer,
                };
                merged.insert(def.name.clone(), (def.value.clone(), origin));
            }
        };
        for (layer, &g) in groups.iter().enumerate() {
            put(&self.groups[g].vars, layer);
        }
        put(&host.vars, groups.len());
        let extra_layer = groups.len() + 1;
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

fn absolute_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// A path from a variable: `~/` is the user's home, relative paths are taken from `base`.
fn resolve_path(raw: &str, base: &Path) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    base.join(raw)
}

/// The winning definition among our name and the `ansible_*` one: the higher layer wins,
/// ours on a tie.
fn pick<'a>(
    vars: &'a MergedVars,
    ours: &'a str,
    ansible: &'a str,
) -> Option<(&'a str, &'a Value, &'a Origin)> {
    let a = vars.get(ours).map(|(v, o)| (ours, v, o));
    let b = vars.get(ansible).map(|(v, o)| (ansible, v, o));
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.2.layer > a.2.layer { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// An error about the connection variable `name` of `host`, at the place it was set.
fn var_error(host: &str, name: &str, origin: &Origin, message: String) -> InputError {
    let mut error = InputError::new(match origin.pos {
        Some(_) => format!("`{name}` {message}"),
        None => format!("`{name}` (set with -e) {message}"),
    })
    .host(host);
    error.pos = origin.pos.clone();
    error
}

/// Strings and numbers as text (an address or user may be written unquoted).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn connection(host: &str, vars: &MergedVars, base_dir: &Path) -> Result<Connection, InputError> {
    let mut conn = Connection::default();
    let non_empty_text = |name: &str, value: &Value, origin: &Origin| {
        text(value)
            .filter(|s| !s.trim().is_empty() && !s.contains(char::is_whitespace))
            .ok_or_else(|| {
                var_error(
                    host,
                    name,
                    origin,
                    format!("must be a non-empty word, not {value}"),
                )
            })
    };
    if let Some((name, value, origin)) = pick(vars, "ssh_host", "ansible_host") {
        conn.address = Some(setting(non_empty_text(name, value, origin)?, name, origin));
    }
    if let Some((name, value, origin)) = pick(vars, "ssh_port", "ansible_port") {
        let port = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let port = port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                var_error(
                    host,
                    name,
                    origin,
                    format!("must be a port number from 1 to 65535, not {value}"),
                )
            })?;
        conn.port = Some(setting(port, name, origin));
    }
    if let Some((name, value, origin)) = pick(vars, "ssh_user", "ansible_user") {
        conn.user = Some(setting(non_empty_text(name, value, origin)?, name, origin));
    }
    if let Some((name, value, origin)) = pick(vars, "ssh_key_file", "ansible_ssh_private_key_file")
    {
        let files: Option<Vec<String>> = match value {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect(),
            _ => None,
        };
        let files = files
            .filter(|files| files.iter().all(|f| !f.trim().is_empty()))
            .ok_or_else(|| {
                var_error(
                    host,
                    name,
                    origin,
                    format!("must be a path or a list of paths, not {value}"),
                )
            })?;
        let files = files.iter().map(|f| resolve_path(f, base_dir)).collect();
        conn.key_files = Some(setting(files, name, origin));
    }
    if let Some((name, value, origin)) = pick(vars, "become", "ansible_become") {
        // `-e become=true` arrives as a string: accept the usual spellings of a boolean.
        let flag = match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        conn.become_root = flag.ok_or_else(|| {
            var_error(
                host,
                name,
                origin,
                format!("must be true or false, not {value}"),
            )
        })?;
    }
    if let Some((name, value, origin)) =
        pick(vars, "ssh_known_hosts_file", "ansible_ssh_known_hosts_file")
    {
        let file = value
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| var_error(host, name, origin, format!("must be a path, not {value}")))?;
        conn.known_hosts = Some(setting(resolve_path(file, base_dir), name, origin));
    }
    if let Some((value, origin)) = vars.get("ssh_config_file") {
        let name = "ssh_config_file";
        let file = value
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                var_error(
                    host,
                    name,
                    origin,
                    format!("must be a path or none, not {value}"),
                )
            })?;
        let file = (file != "none").then(|| resolve_path(file, base_dir));
        conn.ssh_config_file = Some(setting(file, name, origin));
    }
    // The jump: ours, else Ansible's spelling inside its extra ssh arguments.
    if let Some((value, origin)) = vars.get("ssh_proxy_jump") {
        let name = "ssh_proxy_jump";
        let hops = text(value)
            .ok_or_else(|| var_error(host, name, origin, format!("must be text, not {value}")))?;
        check_jump(&hops).map_err(|why| var_error(host, name, origin, why))?;
        conn.proxy_jump = Some(setting(hops, name, origin));
    }
    // Every option there is checked, even when ssh_proxy_jump gives the jump.
    for name in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
        let Some((value, origin)) = vars.get(name) else {
            continue;
        };
        let args = text(value)
            .ok_or_else(|| var_error(host, name, origin, format!("must be text, not {value}")))?;
        let hops = jump_in_ssh_args(&args).map_err(|why| var_error(host, name, origin, why))?;
        if let (Some(hops), None) = (hops, &conn.proxy_jump) {
            conn.proxy_jump = Some(setting(hops, name, origin));
        }
    }
    Ok(conn)
}

fn setting<T>(value: T, name: &str, origin: &Origin) -> Setting<T> {
    let from = match &origin.pos {
        Some(pos) => format!("{pos} ({name})"),
        None => format!("-e {name}"),
    };
    Setting { value, from }
}

/// `none`, or `[user@]host[:port]` hops separated by commas (OpenSSH's ProxyJump).
pub fn check_jump(hops: &str) -> Result<(), String> {
    if hops == "none" {
        return Ok(());
    }
    for hop in hops.split(',') {
        if split_hop(hop).is_err() || hop.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "must be `none` or [user@]host[:port] hops separated by commas; `{hop}` is not one"
            ));
        }
    }
    Ok(())
}

/// One hop of a ProxyJump value, `[user@]host[:port]` (an IPv6 address in brackets): the
/// inventory checks with it, the controller resolves with it.
pub fn split_hop(hop: &str) -> Result<(Option<&str>, &str, Option<u16>), String> {
    let bad = || format!("`{hop}` is not [user@]host[:port]");
    let (user, rest) = match hop.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user), rest),
        Some(_) => return Err(bad()),
        None => (None, hop),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (host, port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            _ => (rest, None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad))
        .transpose()?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((user, host, port))
}

/// Options of `ssh` in Ansible's `ansible_ssh_common_args`/`_extra_args` that do not change which host,
/// user, key or route is used: accepted and left to postfleet.
const NEUTRAL_SSH_OPTIONS: &[&str] = &[
    "controlmaster",
    "controlpersist",
    "controlpath",
    "compression",
    "serveraliveinterval",
    "serveralivecountmax",
    "tcpkeepalive",
    "loglevel",
    "forwardagent",
    "forwardx11",
    "kexalgorithms",
    "ciphers",
    "macs",
];

/// The jump in Ansible's extra ssh arguments (`-J HOPS`, `-o ProxyJump=HOPS`); what else they
/// hold must not change the connection (a ProxyCommand, a user or a port there is refused:
/// postfleet would not honour it).
pub fn jump_in_ssh_args(args: &str) -> Result<Option<String>, String> {
    let words = shlex::split(args).ok_or_else(|| format!("cannot split `{args}` into words"))?;
    let mut jump = None;
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let option = if word == "-J" {
            Some(format!(
                "proxyjump={}",
                words.next().ok_or("-J needs hops")?
            ))
        } else if let Some(rest) = word.strip_prefix("-J") {
            Some(format!("proxyjump={rest}"))
        } else if word == "-o" {
            Some(words.next().ok_or("-o needs an option")?)
        } else if let Some(rest) = word.strip_prefix("-o") {
            Some(rest.to_string())
        } else {
            return Err(format!(
                "`{word}` is not supported there: postfleet reads -J and -o options only"
            ));
        };
        let Some(option) = option else { continue };
        let (key, value) = option
            .split_once(['=', ' '])
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .ok_or_else(|| format!("-o {option}: not KEY=VALUE"))?;
        match key.as_str() {
            "proxyjump" => {
                check_jump(&value)?;
                jump.get_or_insert(value);
            }
            "proxycommand" => {
                return Err("-o ProxyCommand is not supported: use -J or -o ProxyJump, or the inventory var ssh_proxy_jump".into())
            }
            k if NEUTRAL_SSH_OPTIONS.contains(&k) => {}
            _ => {
                return Err(format!(
                    "-o {key} is not supported there: set the connection with inventory vars (ssh_user, ssh_port, ...) or in ssh_config"
                ))
            }
        }
    }
    Ok(jump)
}
