//! OpenSSH client configuration (`~/.ssh/config`, `/etc/ssh/ssh_config`), resolved for one
//! host the way `ssh` resolves it: files in order, the first value obtained for a keyword wins
//! (IdentityFile and CertificateFile add up), `Host` patterns with `*`, `?` and `!`, `Match`
//! with `all`, `host`, `originalhost`, `user` and `localuser` (each may be negated), `Include`
//! with globs (relative to `~/.ssh` for a user file, `/etc/ssh` for a system one), `~` and the
//! `%` tokens. Each value keeps the file and line it came from ([`Sourced`]).
//!
//! What would make the connection differ from `ssh`'s and is not supported here (`ProxyCommand`,
//! `Match exec`, `HostKeyAlias`, ...) is an error naming its file and line, never ignored.
//! Keywords that do not change which host, user, key or route is used (ciphers, forwarding,
//! logging, control sockets, ...) are accepted and left to their defaults.

use std::path::{Path, PathBuf};

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}", self.file.display()),
            line => write!(f, "{}:{line}", self.file.display()),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// The settings postfleet uses, for one host; None: not set by any file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<Sourced<String>>,
    pub user: Option<Sourced<String>>,
    pub port: Option<Sourced<u16>>,
    /// As written (tokens are expanded by [`expand`] when used), in order.
    pub identity_files: Vec<Sourced<String>>,
    pub identities_only: Option<Sourced<bool>>,
    pub identity_agent: Option<Sourced<String>>,
    pub certificate_files: Vec<Sourced<String>>,
    pub user_known_hosts_files: Option<Sourced<Vec<String>>>,
    pub global_known_hosts_files: Option<Sourced<Vec<String>>>,
    /// yes, no, accept-new, ask, off.
    pub strict_host_key_checking: Option<Sourced<String>>,
    /// `none`, or `[user@]host[:port]` hops separated by commas.
    pub proxy_jump: Option<Sourced<String>>,
    pub connect_timeout: Option<Sourced<u64>>,
    pub server_alive_interval: Option<Sourced<u64>>,
}

/// A line postfleet cannot honour, or cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: Origin,
    pub message: String,
}

/// Who is asking: what `%u`, `%d`, `~` and `Match localuser` mean.
#[derive(Debug, Clone)]
pub struct Local {
    pub user: String,
    pub home: PathBuf,
}

/// A configuration file to read, and whether it is the user's (Include paths relative to
/// `~/.ssh`) or the system's (relative to `/etc/ssh`).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub system: bool,
    /// Named by the user (`--ssh-config`, `ssh_config_file`): a missing or unreadable file is
    /// an error, as with `ssh -F`. The default files may be missing.
    pub required: bool,
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Keywords that change the connection and are not supported: refused with their line.
const REFUSED: &[(&str, &str)] = &[
    ("proxycommand", "use ProxyJump instead"),
    (
        "revokedhostkeys",
        "list revoked keys as @revoked lines in known_hosts instead",
    ),
    (
        "hostkeyalias",
        "host keys are checked under the host's own name",
    ),
    ("knownhostscommand", "give the known_hosts files instead"),
    (
        "pkcs11provider",
        "PKCS#11 keys are not supported; use the agent",
    ),
    ("securitykeyprovider", "use the agent for security keys"),
    ("bindaddress", "the local address is the system's choice"),
    (
        "bindinterface",
        "the local interface is the system's choice",
    ),
    ("remotecommand", "postfleet runs its own commands"),
];

/// Resolves `host` (the name the inventory gives) through `sources`, in order (each missing
/// file is skipped, like ssh does).
pub fn resolve(host: &str, sources: &[Source], local: &Local) -> Result<HostConfig, ConfigError> {
    resolve_as(host, None, &local.user, sources, local)
}

/// [`resolve`] for a connection whose user is already chosen (`ssh -l USER`: `Match user`
/// tests that user, and no `User` line overrides it), and whose user without one is
/// `default_user` (ssh's is the local user; postfleet's hosts default to root).
pub fn resolve_as(
    host: &str,
    user: Option<&str>,
    default_user: &str,
    sources: &[Source],
    local: &Local,
) -> Result<HostConfig, ConfigError> {
    let mut state = State {
        original: host.to_string(),
        user: user.map(str::to_string),
        default_user: default_user.to_string(),
        local,
        config: HostConfig::default(),
    };
    for source in sources {
        let base = if source.system {
            PathBuf::from("/etc/ssh")
        } else {
            local.home.join(".ssh")
        };
        match std::fs::read_to_string(&source.path) {
            Ok(text) => state.read(&source.path, &text, &base, 0)?,
            Err(e) if source.required => {
                return Err(ConfigError {
                    origin: Origin {
                        file: source.path.clone(),
                        line: 0,
                    },
                    message: format!("cannot read this ssh_config file: {e}"),
                })
            }
            Err(_) => {}
        }
    }
    Ok(state.config)
}

struct State<'a> {
    original: String,
    /// The user given before any file is read.
    user: Option<String>,
    /// The user when neither that nor a `User` line gives one.
    default_user: String,
    local: &'a Local,
    config: HostConfig,
}

impl State<'_> {
    fn read(
        &mut self,
        file: &Path,
        text: &str,
        base: &Path,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let mut active = true;
        for (index, raw) in text.lines().enumerate() {
            let origin = Origin {
                file: file.to_path_buf(),
                line: index + 1,
            };
            let fail = |message: String| ConfigError {
                origin: origin.clone(),
                message,
            };
            let Some((keyword, args)) = split_line(raw).map_err(&fail)? else {
                continue;
            };
            match keyword.as_str() {
                "host" => {
                    active = host_matches(&self.original, &args);
                    continue;
                }
                "match" => {
                    active = self.match_line(&args).map_err(&fail)?;
                    continue;
                }
                _ => {}
            }
            if !active {
                continue;
            }
            if keyword == "include" {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(fail("Include nested too deeply (a loop?)".into()));
                }
                for pattern in &args {
                    let pattern = tilde(pattern, &self.local.home);
                    let full = if Path::new(&pattern).is_absolute() {
                        PathBuf::from(&pattern)
                    } else {
                        base.join(&pattern)
                    };
                    // As glob(3): `*` does not match a leading dot (editor swap files).
                    let options = glob::MatchOptions {
                        require_literal_leading_dot: true,
                        ..glob::MatchOptions::new()
                    };
                    let paths = glob::glob_with(&full.to_string_lossy(), options)
                        .map_err(|e| fail(format!("Include {pattern}: {e}")))?;
                    let mut paths: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                    paths.sort();
                    for path in paths {
                        if let Ok(text) = std::fs::read_to_string(&path) {
                            self.read(&path, &text, base, depth + 1)?;
                        }
                    }
                }
                continue;
            }
            self.setting(&keyword, &args, &origin).map_err(&fail)?;
        }
        Ok(())
    }

    /// `Match` criteria, all of which must hold.
    fn match_line(&self, args: &[String]) -> Result<bool, String> {
        let mut words = args.iter();
        let mut all = true;
        let mut seen = false;
        while let Some(word) = words.next() {
            seen = true;
            let lower = word.to_ascii_lowercase();
            let (negated, criterion) = match lower.strip_prefix('!') {
                Some(rest) => (true, rest.to_string()),
                None => (false, lower),
            };
            let holds = match criterion.as_str() {
                "all" => true,
                "host" | "originalhost" | "user" | "localuser" => {
                    let list = words
                        .next()
                        .ok_or_else(|| format!("Match {criterion} needs a pattern list"))?;
                    let subject = match criterion.as_str() {
                        "host" => self.current_hostname(),
                        "originalhost" => self.original.clone(),
                        "user" => self.current_user(),
                        _ => self.local.user.clone(),
                    };
                    pattern_list_matches(&subject, list)
                }
                other => {
                    return Err(format!(
                        "Match {other} is not supported (supported: all, host, originalhost, user, localuser)"
                    ))
                }
            };
            all &= holds != negated;
        }
        if !seen {
            return Err("Match needs criteria".into());
        }
        Ok(all)
    }

    fn current_hostname(&self) -> String {
        self.config
            .hostname
            .as_ref()
            .map_or_else(|| self.original.clone(), |h| h.value.clone())
    }

    fn current_user(&self) -> String {
        if let Some(user) = &self.user {
            return user.clone();
        }
        self.config
            .user
            .as_ref()
            .map_or_else(|| self.default_user.clone(), |u| u.value.clone())
    }

    fn setting(&mut self, keyword: &str, args: &[String], origin: &Origin) -> Result<(), String> {
        // `ProxyCommand none` cancels a proxy like `ProxyJump none` (the first of the two
        // obtained wins, as in ssh).
        if keyword == "proxycommand" && args.len() == 1 && args[0].eq_ignore_ascii_case("none") {
            if self.config.proxy_jump.is_none() {
                self.config.proxy_jump = Some(Sourced {
                    value: "none".into(),
                    origin: origin.clone(),
                });
            }
            return Ok(());
        }
        if let Some((_, hint)) = REFUSED.iter().find(|(k, _)| *k == keyword) {
            return Err(format!("{keyword} is not supported by postfleet: {hint}"));
        }
        let first = || {
            args.first()
                .cloned()
                .ok_or_else(|| format!("{keyword} needs a value"))
        };
        let from = |value| Sourced {
            value,
            origin: origin.clone(),
        };
        // Seconds, or OpenSSH's time format (`90`, `1m30s`, `2h`).
        let number = |text: String| -> Result<u64, String> {
            seconds(&text)
                .ok_or_else(|| format!("{keyword} {text}: not a time (seconds, or e.g. 1m30s)"))
        };
        let c = &mut self.config;
        match keyword {
            "hostname" if c.hostname.is_none() => {
                // ssh lowercases it (known_hosts lookups depend on it)
                let value = expand_hostname(&first()?, &self.original)?.to_ascii_lowercase();
                c.hostname = Some(from(value));
            }
            "user" if c.user.is_none() => c.user = Some(from(first()?)),
            "port" if c.port.is_none() => {
                let text = first()?;
                let port = text
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("Port {text}: not a port number"))?;
                c.port = Some(Sourced {
                    value: port,
                    origin: origin.clone(),
                });
            }
            "identityfile" => {
                let value = first()?;
                c.identity_files.push(Sourced {
                    value,
                    origin: origin.clone(),
                });
            }
            "certificatefile" => {
                let value = first()?;
                c.certificate_files.push(Sourced {
                    value,
                    origin: origin.clone(),
                });
            }
            "identitiesonly" if c.identities_only.is_none() => {
                let value = yes_no(&first()?).ok_or("IdentitiesOnly takes yes or no")?;
                c.identities_only = Some(Sourced {
                    value,
                    origin: origin.clone(),
                });
            }
            "identityagent" if c.identity_agent.is_none() => {
                c.identity_agent = Some(from(first()?));
            }
            "userknownhostsfile" if c.user_known_hosts_files.is_none() => {
                first()?;
                c.user_known_hosts_files = Some(Sourced {
                    value: args.to_vec(),
                    origin: origin.clone(),
                });
            }
            "globalknownhostsfile" if c.global_known_hosts_files.is_none() => {
                first()?;
                c.global_known_hosts_files = Some(Sourced {
                    value: args.to_vec(),
                    origin: origin.clone(),
                });
            }
            "stricthostkeychecking" if c.strict_host_key_checking.is_none() => {
                let value = first()?.to_ascii_lowercase();
                if !["yes", "no", "accept-new", "ask", "off"].contains(&value.as_str()) {
                    return Err(format!(
                        "StrictHostKeyChecking {value}: use yes, no or accept-new"
                    ));
                }
                c.strict_host_key_checking = Some(from(value));
            }
            "proxyjump" if c.proxy_jump.is_none() => c.proxy_jump = Some(from(first()?)),
            "connecttimeout" if c.connect_timeout.is_none() => {
                let value = number(first()?)?;
                c.connect_timeout = Some(Sourced {
                    value,
                    origin: origin.clone(),
                });
            }
            "serveraliveinterval" if c.server_alive_interval.is_none() => {
                let value = number(first()?)?;
                c.server_alive_interval = Some(Sourced {
                    value,
                    origin: origin.clone(),
                });
            }
            "canonicalizehostname" => {
                let value = first()?.to_ascii_lowercase();
                if value != "no" && value != "none" {
                    return Err("CanonicalizeHostname is not supported: set HostName".into());
                }
            }
            // Set already (the first value obtained wins), or a keyword that does not change
            // which host, user, key or route is used.
            _ => {}
        }
        Ok(())
    }
}

/// `Keyword args` or `Keyword=args`; None for blank and comment lines.
fn split_line(raw: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_ascii_lowercase();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    Ok(Some((keyword, words(rest)?)))
}

/// Arguments: separated by blanks, `"..."` keeps blanks, a `#` outside quotes ends the line.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(out),
            Some('"') => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err("unbalanced quotes".into()),
                    }
                }
                out.push(word);
            }
            Some(_) => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
}

/// A `Host` line: some pattern matches and no negated one does.
fn host_matches(host: &str, patterns: &[String]) -> bool {
    let mut any = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(negated) if glob_matches(negated, host) => return false,
            Some(_) => {}
            None => any |= glob_matches(pattern, host),
        }
    }
    any
}

/// A comma-separated pattern list (`Match` arguments).
fn pattern_list_matches(subject: &str, list: &str) -> bool {
    let patterns: Vec<String> = list.split(',').map(str::to_string).collect();
    host_matches(subject, &patterns)
}

/// `*` and `?` wildcards. Case counts: `ssh -G MX1` does not match `Host mx*` (checked
/// against OpenSSH 9.2 in tests/ssh_g.rs).
fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

fn tilde(path: &str, home: &Path) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest).to_string_lossy().into_owned(),
        None if path == "~" => home.to_string_lossy().into_owned(),
        None => path.to_string(),
    }
}

/// HostName takes `%h` (the name given) and `%%` only.
/// OpenSSH's time format: a number of seconds, or numbers each followed by s, m, h, d or w.
fn seconds(text: &str) -> Option<u64> {
    if let Ok(plain) = text.parse() {
        return Some(plain);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        total = total.checked_add(digits.parse::<u64>().ok()?.checked_mul(unit)?)?;
        digits.clear();
    }
    digits.is_empty().then_some(total)
}

fn expand_hostname(value: &str, original: &str) -> Result<String, String> {
    expand_with(value, |token| match token {
        'h' => Some(original.to_string()),
        _ => None,
    })
}

/// What a path's tokens stand for.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    /// `%h`: the host name connected to (after HostName).
    pub hostname: &'a str,
    /// `%n`: the name as given.
    pub original: &'a str,
    /// `%r`: the remote user.
    pub user: &'a str,
    /// `%p`
    pub port: u16,
    pub local: &'a Local,
}

/// A path setting (IdentityFile, CertificateFile, IdentityAgent, UserKnownHostsFile) with
/// `~` and its tokens (`%d %h %n %p %r %u %%`) expanded.
pub fn expand(value: &str, tokens: &Tokens<'_>) -> Result<String, String> {
    let expanded = expand_with(value, |token| match token {
        'd' => Some(tokens.local.home.to_string_lossy().into_owned()),
        'h' => Some(tokens.hostname.to_string()),
        'n' => Some(tokens.original.to_string()),
        'p' => Some(tokens.port.to_string()),
        'r' => Some(tokens.user.to_string()),
        'u' => Some(tokens.local.user.clone()),
        _ => None,
    })?;
    Ok(tilde(&expanded, &tokens.local.home))
}

fn expand_with(value: &str, token: impl Fn(char) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match token(t) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("{value}: the token %{t} is not supported here")),
            },
            None => return Err(format!("{value}: a lone % at the end")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
