//! How each host is reached: its inventory connection vars, then the OpenSSH client
//! configuration, then the defaults ([`resolve`]); and the connections themselves, through
//! jump hosts shared by every host behind them ([`Connector`]).
//!
//! A host is looked up in ssh_config under the name `ssh` would be given for it, as Ansible
//! does: its `ssh_host`/`ansible_host` when set, else its inventory name. Inventory vars win;
//! ssh_config fills what they leave unset; the defaults (the name, port 22, root) come last.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postfleet_core::error::{InputError, SourcePos};
use postfleet_core::inventory::Host;
use postfleet_ssh::config::{self, HostConfig, Local, Source, Sourced, Tokens};
use postfleet_ssh::{Agent, HostKeyPolicy, Session, SshError, SshOptions, Target};
use tokio::sync::OnceCell;

/// Which OpenSSH client configuration to read (`--ssh-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChoice {
    /// The inventory var `ssh_config_file` of each host, else `~/.ssh/config` and
    /// `/etc/ssh/ssh_config`.
    PerHost,
    /// `--ssh-config none`: no file.
    Nothing,
    /// `--ssh-config FILE`: that file only (as `ssh -F FILE`).
    File(PathBuf),
}

impl ConfigChoice {
    pub fn from_flag(flag: Option<&str>) -> ConfigChoice {
        match flag {
            None => ConfigChoice::PerHost,
            Some("none") => ConfigChoice::Nothing,
            Some(file) => ConfigChoice::File(PathBuf::from(file)),
        }
    }
}

/// One setting of a host's connection as resolved, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    pub setting: &'static str,
    pub value: String,
    /// `FILE:LINE[:COL] (VAR)` of the inventory, `FILE:LINE` of an ssh_config file, `-e VAR`,
    /// `--flag`, or `default`.
    pub from: String,
}

/// How to reach one host.
#[derive(Debug, Clone)]
pub struct Reach {
    pub target: Target,
    /// The jump hosts, first one connected to directly; empty: a direct connection.
    pub jumps: Vec<Target>,
    /// For `postfleet inventory`.
    pub shown: Vec<Shown>,
}

/// Who runs postfleet: `%u`, `%d`, `~` and `Match localuser`.
pub fn local_user() -> Local {
    let home = postfleet_ssh::home_dir().unwrap_or_else(|| PathBuf::from("/"));
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    Local { user, home }
}

fn sources(host: &Host, choice: &ConfigChoice, local: &Local) -> (Vec<Source>, String) {
    let named = |path: &PathBuf| Source {
        path: path.clone(),
        system: false,
        required: true,
    };
    match choice {
        ConfigChoice::Nothing => (Vec::new(), "--ssh-config none".into()),
        ConfigChoice::File(path) => (vec![named(path)], "--ssh-config".into()),
        ConfigChoice::PerHost => match &host.connection.ssh_config_file {
            Some(setting) => match &setting.value {
                Some(path) => (vec![named(path)], setting.from.clone()),
                None => (Vec::new(), setting.from.clone()),
            },
            None => (
                vec![
                    Source {
                        path: local.home.join(".ssh/config"),
                        system: false,
                        required: false,
                    },
                    Source {
                        path: PathBuf::from("/etc/ssh/ssh_config"),
                        system: true,
                        required: false,
                    },
                ],
                "default".into(),
            ),
        },
    }
}

/// Where a value of an ssh_config file came from.
fn from_config<T>(sourced: &Sourced<T>) -> String {
    sourced.origin.to_string()
}

fn config_error(host: &str, e: config::ConfigError) -> InputError {
    let mut error = InputError::new(format!(
        "{}; fix that line, or read no ssh_config with --ssh-config none",
        e.message
    ))
    .host(host);
    error.pos = Some(SourcePos::new(&e.origin.file, e.origin.line, 0));
    error
}

/// What the command line says about every host, winning over ssh_config.
#[derive(Debug, Clone, Copy, Default)]
pub struct CliSettings {
    /// `--connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// `--accept-new`.
    pub accept_new: bool,
}

/// Resolves every host (errors name the host and the file and line at fault); a host whose
/// `ansible_connection` is not SSH is bad input.
pub fn resolve_all(
    hosts: &[Host],
    choice: &ConfigChoice,
    cli: CliSettings,
) -> Result<HashMap<String, Reach>, InputError> {
    for host in hosts {
        host.check_reachable()?;
    }
    let local = local_user();
    hosts
        .iter()
        .map(|host| Ok((host.name.clone(), resolve(host, choice, cli, &local)?)))
        .collect()
}

/// The user postfleet logs in as when neither the inventory nor ssh_config names one (ssh's
/// would be the local user).
const DEFAULT_USER: &str = "root";

/// How to reach `host` (see the module's doc for the order of precedence).
pub fn resolve(
    host: &Host,
    choice: &ConfigChoice,
    cli: CliSettings,
    local: &Local,
) -> Result<Reach, InputError> {
    let conn = &host.connection;
    let (files, files_from) = sources(host, choice, local);
    let mut shown = vec![Shown {
        setting: "ssh_config",
        value: if files.is_empty() {
            "none".into()
        } else {
            join_paths(&files.iter().map(|s| s.path.clone()).collect::<Vec<_>>())
        },
        from: files_from,
    }];
    // The name ssh would be given: ssh_host (Ansible's ansible_host), else the inventory name.
    let name = conn
        .address
        .as_ref()
        .map_or(host.name.as_str(), |a| a.value.as_str());
    let user_given = conn.user.as_ref().map(|u| u.value.as_str());
    let found = config::resolve_as(name, user_given, DEFAULT_USER, &files, local)
        .map_err(|e| config_error(&host.name, e))?;

    let mut pick = |setting: &'static str,
                    first: Option<(String, String)>,
                    then: Option<(String, String)>,
                    default: String| {
        let (value, from) = first
            .or(then)
            .unwrap_or_else(|| (default, "default".into()));
        shown.push(Shown {
            setting,
            value: value.clone(),
            from,
        });
        value
    };
    // As `ssh NAME` would: a HostName of its block maps the name (ssh_host included) on.
    let address = pick(
        "address",
        found
            .hostname
            .as_ref()
            .map(|h| (h.value.clone(), from_config(h))),
        conn.address
            .as_ref()
            .map(|a| (a.value.clone(), a.from.clone())),
        host.name.clone(),
    );
    let port: u16 = pick(
        "port",
        conn.port
            .as_ref()
            .map(|p| (p.value.to_string(), p.from.clone())),
        found
            .port
            .as_ref()
            .map(|p| (p.value.to_string(), from_config(p))),
        "22".into(),
    )
    .parse()
    .unwrap_or(22);
    let user = pick(
        "user",
        conn.user
            .as_ref()
            .map(|u| (u.value.clone(), u.from.clone())),
        found
            .user
            .as_ref()
            .map(|u| (u.value.clone(), from_config(u))),
        DEFAULT_USER.into(),
    );
    let mut target = Target::new(address.clone(), port, user.clone());
    target.become_root = conn.become_root;
    let tokens = Tokens {
        hostname: &address,
        original: name,
        user: &user,
        port,
        local,
    };
    let fail = |e: config::ConfigError| config_error(&host.name, e);

    // Keys: the inventory's, else ssh_config's IdentityFile lines, else the usual files.
    if let Some(files) = &conn.key_files {
        target.key_files = files.value.clone();
        shown.push(Shown {
            setting: "key_files",
            value: join_paths(&target.key_files),
            from: files.from.clone(),
        });
    } else if let Some(first) = found.identity_files.first() {
        for file in &found.identity_files {
            target
                .key_files
                .push(PathBuf::from(expand(file, &tokens).map_err(fail)?));
        }
        shown.push(Shown {
            setting: "key_files",
            value: join_paths(&target.key_files),
            from: from_config(first),
        });
    } else {
        shown.push(Shown {
            setting: "key_files",
            value: "~/.ssh/id_ed25519, ~/.ssh/id_ecdsa, ~/.ssh/id_rsa".into(),
            from: "default".into(),
        });
    }
    let inventory_known_hosts = conn.known_hosts.as_ref().map(|file| {
        shown.push(Shown {
            setting: "known_hosts",
            value: file.value.display().to_string(),
            from: file.from.clone(),
        });
        file.value.clone()
    });
    let taken = Taken {
        known_hosts: inventory_known_hosts,
    };
    apply_config(&mut target, &found, &tokens, cli, &taken, Some(&mut shown)).map_err(fail)?;

    // Jumps: the inventory's, else ssh_config's ProxyJump.
    let jump = conn
        .proxy_jump
        .as_ref()
        .map(|j| (j.value.clone(), j.from.clone(), None))
        .or_else(|| {
            found
                .proxy_jump
                .as_ref()
                .map(|j| (j.value.clone(), from_config(j), Some(j.origin.clone())))
        });
    let mut jumps = Vec::new();
    if let Some((hops, from, origin)) = jump {
        let fail = |why: String| match &origin {
            Some(origin) => config_error(
                &host.name,
                config::ConfigError {
                    origin: origin.clone(),
                    message: why,
                },
            ),
            None => InputError::new(format!("{from}: {why}")).host(&host.name),
        };
        jumps = jump_chain(&hops, &target, &files, cli, local, 0).map_err(fail)?;
        shown.push(Shown {
            setting: "proxy_jump",
            value: if jumps.is_empty() {
                "none".into()
            } else {
                jumps
                    .iter()
                    .map(Target::label)
                    .collect::<Vec<_>>()
                    .join(" -> ")
            },
            from,
        });
    }
    Ok(Reach {
        target,
        jumps,
        shown,
    })
}

/// A path setting with its tokens expanded; a bad token is an error at its line.
fn expand(sourced: &Sourced<String>, tokens: &Tokens<'_>) -> Result<String, config::ConfigError> {
    config::expand(&sourced.value, tokens).map_err(|message| config::ConfigError {
        origin: sourced.origin.clone(),
        message,
    })
}

/// Every path of a setting that takes several (UserKnownHostsFile, GlobalKnownHostsFile),
/// expanded.
fn expand_each(
    files: &Sourced<Vec<String>>,
    tokens: &Tokens<'_>,
) -> Result<Vec<String>, config::ConfigError> {
    files
        .value
        .iter()
        .map(|value| {
            let one = Sourced {
                value: value.clone(),
                origin: files.origin.clone(),
            };
            expand(&one, tokens)
        })
        .collect()
}

/// What the inventory (or the host behind a jump) fixed already.
struct Taken {
    /// The known_hosts file, when the inventory names one (ssh_config's are not read then).
    known_hosts: Option<PathBuf>,
}

/// The ssh_config settings that hosts and jump hosts take alike: certificates, the agent,
/// known_hosts files, host key checking, timeouts. Each one set is shown with its line.
fn apply_config(
    target: &mut Target,
    found: &HostConfig,
    tokens: &Tokens<'_>,
    cli: CliSettings,
    taken: &Taken,
    mut shown: Option<&mut Vec<Shown>>,
) -> Result<(), config::ConfigError> {
    let mut show = |setting: &'static str, value: String, from: String| {
        if let Some(shown) = shown.as_deref_mut() {
            shown.push(Shown {
                setting,
                value,
                from,
            });
        }
    };
    // User certificates named by CertificateFile (a KEY-cert.pub beside a key is found
    // without it).
    for file in &found.certificate_files {
        target
            .certificate_files
            .push(PathBuf::from(expand(file, tokens)?));
    }
    if let Some(first) = found.certificate_files.first() {
        show(
            "certificate_files",
            join_paths(&target.certificate_files),
            from_config(first),
        );
    }
    if let Some(agent) = &found.identity_agent {
        target.agent = match agent.value.as_str() {
            "none" => Agent::Off,
            "SSH_AUTH_SOCK" => Agent::FromOptions,
            _ => Agent::Socket(PathBuf::from(expand(agent, tokens)?)),
        };
        show("agent", agent.value.clone(), from_config(agent));
    }
    if let Some(only) = found.identities_only.as_ref().filter(|o| o.value) {
        target.identities_only = true;
        show(
            "identities_only",
            "yes: only the keys of the files named, from the agent too".into(),
            from_config(only),
        );
    }
    // known_hosts: the inventory's file, else ssh_config's UserKnownHostsFile (the first one
    // learns, all are read), then GlobalKnownHostsFile; by default ssh's own files.
    let home = tokens.local.home.clone();
    let user_files: Vec<String> = match (&taken.known_hosts, &found.user_known_hosts_files) {
        (Some(file), _) => vec![file.display().to_string()],
        (None, Some(files)) => {
            let paths = expand_each(files, tokens)?;
            if paths[0] == "/dev/null" {
                return Err(config::ConfigError {
                    origin: files.origin.clone(),
                    message: "UserKnownHostsFile /dev/null: postfleet never connects without \
                              checking the host's key; name a known_hosts file"
                        .into(),
                });
            }
            show("known_hosts", paths.join(", "), from_config(files));
            paths
        }
        (None, None) => vec![
            home.join(".ssh/known_hosts").display().to_string(),
            home.join(".ssh/known_hosts2").display().to_string(),
        ],
    };
    let global_files: Vec<String> = match &found.global_known_hosts_files {
        Some(files) => {
            let paths = expand_each(files, tokens)?;
            show("global_known_hosts", paths.join(", "), from_config(files));
            paths
        }
        None => vec![
            "/etc/ssh/ssh_known_hosts".into(),
            "/etc/ssh/ssh_known_hosts2".into(),
        ],
    };
    target.known_hosts = user_files.first().map(PathBuf::from);
    target.extra_known_hosts = user_files
        .iter()
        .skip(1)
        .chain(&global_files)
        .filter(|f| f.as_str() != "/dev/null")
        .map(PathBuf::from)
        .collect();
    // --accept-new wins; else StrictHostKeyChecking. postfleet never connects to a host whose
    // key it cannot check: "no" learns new keys (like accept-new) and still refuses a changed
    // one; "ask" cannot ask, so refuses.
    if let (false, Some(strict)) = (cli.accept_new, &found.strict_host_key_checking) {
        target.host_key_policy = Some(match strict.value.as_str() {
            "accept-new" | "no" | "off" => HostKeyPolicy::AcceptNew,
            _ => HostKeyPolicy::Strict,
        });
        show(
            "strict_host_key_checking",
            strict.value.clone(),
            from_config(strict),
        );
    }
    if let (None, Some(secs)) = (cli.connect_timeout, &found.connect_timeout) {
        target.connect_timeout = Some(Duration::from_secs(secs.value.clamp(1, 3600)));
        show(
            "connect_timeout",
            format!("{}s", secs.value),
            from_config(secs),
        );
    }
    if let Some(secs) = found.server_alive_interval.as_ref().filter(|s| s.value > 0) {
        target.keepalive_interval = Some(Duration::from_secs(secs.value));
        show(
            "keepalive_interval",
            format!("{}s", secs.value),
            from_config(secs),
        );
    }
    Ok(())
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Jumps nested deeper than this are a loop in ssh_config.
const MAX_JUMP_DEPTH: usize = 8;

/// The hops of a ProxyJump value (`none`: no hop), each resolved through ssh_config under its
/// own name as `ssh` does: the first hop with its own ProxyJump (followed), the others with
/// the previous hop as their jump. A hop's user is its own, else ssh_config's, else the local
/// user (as with `ssh -J`); its ssh_config settings are its own; what ssh_config gives it no
/// value for (keys, certificates, known_hosts file) is that of the host it leads to.
fn jump_chain(
    hops: &str,
    behind: &Target,
    files: &[Source],
    cli: CliSettings,
    local: &Local,
    depth: usize,
) -> Result<Vec<Target>, String> {
    if hops == "none" {
        return Ok(Vec::new());
    }
    if depth >= MAX_JUMP_DEPTH {
        return Err("ProxyJump hosts lead to each other in a loop".into());
    }
    let mut chain = Vec::new();
    for (index, hop) in hops.split(',').enumerate() {
        let (user, host, port) = postfleet_core::inventory::split_hop(hop)?;
        let found: HostConfig = config::resolve_as(host, user, &local.user, files, local)
            .map_err(|e| format!("jump host {hop}: {e}"))?;
        let address = found
            .hostname
            .as_ref()
            .map_or_else(|| host.to_ascii_lowercase(), |h| h.value.clone());
        let port = port.or(found.port.as_ref().map(|p| p.value)).unwrap_or(22);
        // As `ssh -J` does: the hop's own user, else ssh_config's, else the local user.
        let user = user
            .map(str::to_string)
            .or(found.user.as_ref().map(|u| u.value.clone()))
            .unwrap_or_else(|| local.user.clone());
        let mut target = Target::new(address.clone(), port, user.clone());
        let tokens = Tokens {
            hostname: &address,
            original: host,
            user: &user,
            port,
            local,
        };
        let bad = |e: config::ConfigError| format!("jump host {hop}: {e}");
        for file in &found.identity_files {
            target
                .key_files
                .push(PathBuf::from(expand(file, &tokens).map_err(bad)?));
        }
        let taken = Taken {
            known_hosts: found
                .user_known_hosts_files
                .is_none()
                .then(|| behind.known_hosts.clone())
                .flatten(),
        };
        target.agent = behind.agent.clone();
        apply_config(&mut target, &found, &tokens, cli, &taken, None).map_err(bad)?;
        if found.user_known_hosts_files.is_none() {
            target.extra_known_hosts = behind.extra_known_hosts.clone();
        }
        if target.key_files.is_empty() {
            target.key_files = behind.key_files.clone();
            if target.certificate_files.is_empty() {
                target.certificate_files = behind.certificate_files.clone();
            }
        }
        if found.strict_host_key_checking.is_none() {
            target.host_key_policy = behind.host_key_policy;
        }
        if found.connect_timeout.is_none() {
            target.connect_timeout = behind.connect_timeout;
        }
        if index == 0 {
            if let Some(own) = &found.proxy_jump {
                chain.extend(jump_chain(
                    &own.value,
                    &target,
                    files,
                    cli,
                    local,
                    depth + 1,
                )?);
            }
        }
        chain.push(target);
    }
    Ok(chain)
}

type Shared = Arc<OnceCell<Result<Arc<Session>, SshError>>>;

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("hosts", &self.reaches.len())
            .finish_non_exhaustive()
    }
}

/// Opens the connections of a run: each host's own, and one per jump host (per chain of
/// hops), opened by the first host that needs it and shared by all behind it. A jump host
/// that fails is tried once; every host behind it gets that failure, naming it.
pub struct Connector {
    pub opts: SshOptions,
    reaches: HashMap<String, Reach>,
    hops: Mutex<HashMap<Vec<String>, Shared>>,
}

impl Connector {
    pub fn new(opts: SshOptions, reaches: HashMap<String, Reach>) -> Connector {
        Connector {
            opts,
            reaches,
            hops: Mutex::new(HashMap::new()),
        }
    }

    /// A new connection to `host` (an inventory name), through its jump hosts.
    pub async fn connect(&self, host: &str) -> Result<Session, SshError> {
        let reach = self
            .reaches
            .get(host)
            .ok_or_else(|| SshError::Other(format!("{host}: not resolved (a bug)")))?;
        if reach.jumps.is_empty() {
            return Session::connect(&reach.target, &self.opts).await;
        }
        let jump = self.hop(&reach.jumps).await?;
        jump.connect_via(&reach.target, &self.opts).await
    }

    /// The shared connection to the last hop of `chain`.
    fn hop<'a>(
        &'a self,
        chain: &'a [Target],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Arc<Session>, SshError>> + Send + 'a>,
    > {
        Box::pin(async move {
            // Everything a hop is reached with: hosts that reach one bastion differently
            // (another known_hosts file, key, policy) do not share a connection to it.
            let key: Vec<String> = chain.iter().map(|t| format!("{t:?}")).collect();
            let cell = {
                let mut hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
                let cell = hops.entry(key.clone()).or_default();
                // A jump connection that was lost (the reconnection after a dropped apply
                // needs it again) is opened anew; a failure stays the answer for the run.
                if matches!(cell.get(), Some(Ok(session)) if session.is_closed()) {
                    *cell = Shared::default();
                }
                cell.clone()
            };
            let last = &chain[chain.len() - 1];
            cell.get_or_init(|| async {
                let session = match chain.len() {
                    1 => Session::connect(last, &self.opts).await,
                    n => {
                        let before = self.hop(&chain[..n - 1]).await?;
                        before.connect_via(last, &self.opts).await
                    }
                };
                session.map(Arc::new).map_err(|e| jump_failure(last, e))
            })
            .await
            .clone()
        })
    }

    /// Closes the jump hosts' connections (each host closes its own), the ones furthest
    /// down a chain first.
    pub async fn close(&self) {
        let mut cells: Vec<(Vec<String>, Shared)> = self
            .hops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        cells.sort_by_key(|(key, _)| std::cmp::Reverse(key.len()));
        for (_, cell) in cells {
            let session = Arc::try_unwrap(cell)
                .ok()
                .and_then(OnceCell::into_inner)
                .and_then(Result::ok)
                .and_then(|session| Arc::try_unwrap(session).ok());
            if let Some(session) = session {
                session.close().await;
            }
        }
    }
}

/// A jump host's failure, as the cause of each host behind it: always "unreachable" (the
/// host itself was never tried), naming the jump host.
fn jump_failure(jump: &Target, e: SshError) -> SshError {
    match e {
        // already names the hop that failed further down the chain
        SshError::Unreachable(why) if why.starts_with("jump host ") => SshError::Unreachable(why),
        e => SshError::Unreachable(format!("jump host {}: {e}", jump.label())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inventory (YAML text) and an ssh_config file, in a temp dir; every host resolved.
    fn resolved(inventory: &str, ssh_config: &str) -> (tempfile::TempDir, HashMap<String, Reach>) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, ssh_config).unwrap();
        let inv_path = dir.path().join("inventory.yml");
        let inv =
            postfleet_core::inventory::parse(inventory, &inv_path, &Default::default()).unwrap();
        let reaches = resolve_all(
            &inv.hosts,
            &ConfigChoice::File(config),
            CliSettings::default(),
        )
        .unwrap();
        (dir, reaches)
    }

    fn shown<'a>(reach: &'a Reach, setting: &str) -> &'a Shown {
        reach
            .shown
            .iter()
            .find(|s| s.setting == setting)
            .unwrap_or_else(|| panic!("{setting} not shown: {:?}", reach.shown))
    }

    #[test]
    fn inventory_vars_win_ssh_config_fills_the_rest_defaults_last() {
        let (dir, reaches) = resolved(
            "all:\n  hosts:\n    mx1:\n      ssh_port: 2222\n    web1:\n",
            "Host mx*\n  HostName %h.example.org\n  Port 2200\n  User ops\n  IdentityFile ~/.ssh/fleet_%r\n\
             \x20 ServerAliveInterval 5\n",
        );
        let mx1 = &reaches["mx1"];
        assert_eq!(mx1.target.address, "mx1.example.org");
        assert_eq!(mx1.target.port, 2222, "the inventory's port wins");
        assert_eq!(mx1.target.user, "ops");
        let home = local_user().home;
        assert_eq!(mx1.target.key_files, [home.join(".ssh/fleet_ops")]);
        assert_eq!(mx1.target.keepalive_interval, Some(Duration::from_secs(5)));
        let config = dir.path().join("ssh_config").display().to_string();
        assert_eq!(shown(mx1, "address").from, format!("{config}:2"));
        assert!(
            shown(mx1, "port")
                .from
                .ends_with("inventory.yml:4:17 (ssh_port)"),
            "{:?}",
            shown(mx1, "port")
        );
        assert_eq!(shown(mx1, "user").from, format!("{config}:4"));
        // Nothing matches web1: the defaults.
        let web1 = &reaches["web1"];
        assert_eq!(
            (
                web1.target.address.as_str(),
                web1.target.port,
                web1.target.user.as_str()
            ),
            ("web1", 22, "root")
        );
        assert_eq!(shown(web1, "address").from, "default");
        assert!(web1.jumps.is_empty());
    }

    #[test]
    fn jumps_come_from_the_inventory_or_ssh_config_each_hop_resolved_under_its_name() {
        let (_dir, reaches) = resolved(
            "all:\n  hosts:\n    mx1:\n    mx2:\n      ssh_proxy_jump: admin@edge:2022,inner\n    mx3:\n      ssh_proxy_jump: none\n",
            "Host mx*\n  ProxyJump bastion\nHost bastion\n  HostName 192.0.2.1\n  User jump\n  ProxyJump gate\n\
             Host inner\n  HostName 10.9.0.1\n  ProxyJump ignored\nHost gate\n  Port 2200\n",
        );
        let labels = |r: &Reach| r.jumps.iter().map(Target::label).collect::<Vec<_>>();
        // the first hop's own ProxyJump is followed (gate, then bastion)
        let me = local_user().user;
        assert_eq!(
            labels(&reaches["mx1"]),
            [format!("{me}@gate:2200"), "jump@192.0.2.1:22".into()]
        );
        // later hops' ProxyJump lines are not: the previous hop is their jump
        assert_eq!(
            labels(&reaches["mx2"]),
            ["admin@edge:2022".to_string(), format!("{me}@10.9.0.1:22")]
        );
        assert!(shown(&reaches["mx2"], "proxy_jump")
            .from
            .ends_with("(ssh_proxy_jump)"));
        assert!(
            reaches["mx3"].jumps.is_empty(),
            "none: straight to the host"
        );
    }

    #[test]
    fn ansible_ssh_common_args_give_the_jump() {
        let (_dir, reaches) = resolved(
            "all:\n  hosts:\n    a:\n      ansible_ssh_common_args: '-o ProxyJump=ops@b1'\n\
             \x20   c:\n      ansible_ssh_common_args: '-o ControlMaster=auto -J b2:2222'\n",
            "",
        );
        assert_eq!(reaches["a"].jumps[0].label(), "ops@b1:22");
        assert_eq!(
            reaches["c"].jumps[0].label(),
            format!("{}@b2:2222", local_user().user)
        );
    }

    #[test]
    fn a_line_postfleet_cannot_honour_is_bad_input_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(
            &config,
            "Host *\n  User ops\nHost mx1\n  ProxyCommand ssh -W %h:%p gw\n",
        )
        .unwrap();
        let inv = postfleet_core::inventory::parse(
            "all:\n  hosts:\n    mx1:\n",
            &dir.path().join("inventory.yml"),
            &Default::default(),
        )
        .unwrap();
        let e = resolve_all(
            &inv.hosts,
            &ConfigChoice::File(config.clone()),
            CliSettings::default(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&format!("{}:4", config.display())), "{text}");
        assert!(text.contains("ProxyJump") && text.contains("mx1"), "{text}");
        // --ssh-config none: the file is not read at all
        assert!(resolve_all(&inv.hosts, &ConfigChoice::Nothing, CliSettings::default()).is_ok());
    }

    #[test]
    fn host_key_files_and_checking_follow_ssh_config_and_the_command_line() {
        let (dir, reaches) = resolved(
            "all:\n  hosts:\n    mx1:\n    mx2:\n      ssh_host: mx2-mgmt\n    web1:\n",
            "Match user root\n  IdentitiesOnly yes\nHost mx1\n  UserKnownHostsFile ~/.ssh/fleet ~/.ssh/more\n\
             \x20 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking accept-new\n\
             Host mx2-mgmt\n  HostName 10.1.0.5\n",
        );
        let home = local_user().home;
        let mx1 = &reaches["mx1"].target;
        assert_eq!(mx1.known_hosts, Some(home.join(".ssh/fleet")));
        assert_eq!(
            mx1.extra_known_hosts,
            [home.join(".ssh/more")],
            "/dev/null is no file"
        );
        assert_eq!(mx1.host_key_policy, Some(HostKeyPolicy::AcceptNew));
        assert!(
            mx1.identities_only,
            "Match user tests root, postfleet's default user"
        );
        // ssh_host is the name ssh is given: its block's HostName maps it on, as with ssh.
        assert_eq!(reaches["mx2"].target.address, "10.1.0.5");
        // By default ssh's own files, the system's read too.
        let web1 = &reaches["web1"].target;
        assert_eq!(web1.known_hosts, Some(home.join(".ssh/known_hosts")));
        assert!(web1
            .extra_known_hosts
            .contains(&PathBuf::from("/etc/ssh/ssh_known_hosts")));
        // --accept-new wins over StrictHostKeyChecking.
        let config = dir.path().join("ssh_config");
        let inv = postfleet_core::inventory::parse(
            "all:\n  hosts:\n    mx1:\n",
            &dir.path().join("inventory.yml"),
            &Default::default(),
        )
        .unwrap();
        std::fs::write(&config, "Host *\n  StrictHostKeyChecking yes\n").unwrap();
        let cli = CliSettings {
            accept_new: true,
            ..CliSettings::default()
        };
        let reaches = resolve_all(&inv.hosts, &ConfigChoice::File(config.clone()), cli).unwrap();
        assert_eq!(
            reaches["mx1"].target.host_key_policy, None,
            "the flag's policy"
        );
        // Never without a check: UserKnownHostsFile /dev/null is refused at its line.
        std::fs::write(&config, "Host *\n  UserKnownHostsFile /dev/null\n").unwrap();
        let e = resolve_all(&inv.hosts, &ConfigChoice::File(config.clone()), cli).unwrap_err();
        assert!(
            e.to_string().contains(&format!("{}:2", config.display())),
            "{e}"
        );
        // A file named on purpose must be there.
        let missing = dir.path().join("nope");
        let e = resolve_all(&inv.hosts, &ConfigChoice::File(missing.clone()), cli).unwrap_err();
        assert!(
            e.to_string().contains("cannot read this ssh_config file"),
            "{e}"
        );
    }
}
