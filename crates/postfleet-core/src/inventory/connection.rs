//! A host's connection settings from its merged variables: our names (`ssh_host`...) or
//! Ansible's (`ansible_host`...), the more specific one winning; the jump from
//! `ssh_proxy_jump` or Ansible's extra ssh arguments; `ansible_connection` checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Connection, Setting, Unsupported};
use crate::error::{InputError, SourcePos};

/// Where a merged variable's winning value came from: a file position (None: `-e`) and the
/// precedence layer, so our connection names and the `ansible_*` ones can be ranked.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub pos: Option<SourcePos>,
    pub layer: usize,
}

pub(crate) type MergedVars = BTreeMap<String, (Value, Origin)>;

/// `ansible_connection` values that mean OpenSSH-style SSH, which is what postfleet speaks.
const SSH_CONNECTIONS: &[&str] = &[
    "ssh",
    "smart",
    "paramiko",
    "paramiko_ssh",
    "ansible.builtin.ssh",
    "ansible.builtin.paramiko_ssh",
];

/// The absolute directory of `file`: relative paths set in it are taken from there.
pub(crate) fn absolute_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// A path from a variable: `~/` is the user's home, relative paths are taken from the
/// directory of the file that set it (for `-e`: `extra_base`).
fn resolve_path(raw: &str, origin: &Origin, extra_base: &Path) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    match &origin.pos {
        Some(pos) => absolute_dir(&pos.file).join(raw),
        None => extra_base.join(raw),
    }
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

/// The connection of `host` from its merged variables; relative paths of `-e` values are
/// taken from `extra_base`.
pub(crate) fn connection(
    host: &str,
    vars: &MergedVars,
    extra_base: &Path,
) -> Result<Connection, InputError> {
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
        let files = files
            .iter()
            .map(|f| resolve_path(f, origin, extra_base))
            .collect();
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
        conn.known_hosts = Some(setting(
            resolve_path(file, origin, extra_base),
            name,
            origin,
        ));
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
        let file = (file != "none").then(|| resolve_path(file, origin, extra_base));
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
    if let Some((value, origin)) = vars.get("ansible_connection") {
        let name = "ansible_connection";
        let kind = text(value)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                var_error(
                    host,
                    name,
                    origin,
                    format!("must be a connection type such as ssh, not {value}"),
                )
            })?;
        if !SSH_CONNECTIONS.contains(&kind.as_str()) {
            conn.unsupported = Some(Unsupported {
                setting: setting(kind, name, origin),
                pos: origin.pos.clone(),
            });
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
