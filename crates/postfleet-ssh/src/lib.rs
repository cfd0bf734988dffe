//! SSH transport (russh): one connection per host, reused for every command.
//!
//! - Host keys: strict known_hosts checking by default ([`HostKeyPolicy`]), in the inventory's
//!   file or `~/.ssh/known_hosts`; hashed entries are understood ([`known_hosts`]).
//! - Host certificates: `@cert-authority` lines ([`known_hosts::check_certificate`]).
//! - Auth: ssh-agent (`SSH_AUTH_SOCK`, its certificates too), then key files, each with its
//!   certificates (`KEY-cert.pub`, [`Target::certificate_files`]), shared by all hosts through
//!   one [`KeyStore`] (encrypted keys: [`auth::PASSPHRASE_VAR`] or a terminal prompt).
//! - Commands: [`Session::run_script`] (`/bin/sh`, the script inside the exec request or on
//!   stdin, [`script`]; `sudo -n` for become), each one exec channel, at most 8 at once per
//!   connection.
//! - [`Target`]: where and as whom to connect (the caller's inventory maps onto it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod auth;
pub mod config;
pub mod known_hosts;
mod quickack;
pub mod script;
mod session;

pub use self::auth::KeyStore;
pub use self::script::guard_stdin;
pub use self::session::{Session, CHANNELS_PER_CONNECTION};

/// One host to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Address or DNS name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Key files to try after the agent; empty: ~/.ssh/id_{ed25519,ecdsa,rsa}. A
    /// `KEY-cert.pub` beside a key file is tried as its certificate, as OpenSSH does.
    pub key_files: Vec<PathBuf>,
    /// User certificates (ssh_config `CertificateFile`), each used with the agent key or key
    /// file that holds its private key.
    pub certificate_files: Vec<PathBuf>,
    /// Run remote work through `sudo -n` (ignored for root).
    pub become_root: bool,
    /// known_hosts file; None: [`SshOptions::default_known_hosts`].
    pub known_hosts: Option<PathBuf>,
    /// More known_hosts files, read and never written (ssh_config's further
    /// UserKnownHostsFile and its GlobalKnownHostsFile): the first file with an entry for the
    /// host decides ([`known_hosts::deciding_file`]).
    pub extra_known_hosts: Vec<PathBuf>,
    /// Which ssh-agent to ask for keys.
    pub agent: Agent,
    /// ssh_config's `IdentitiesOnly yes`: of the agent's keys, only those of the key and
    /// certificate files named are offered.
    pub identities_only: bool,
    /// None: [`SshOptions::host_key_policy`].
    pub host_key_policy: Option<HostKeyPolicy>,
    /// None: [`SshOptions::connect_timeout`].
    pub connect_timeout: Option<Duration>,
    /// None: [`SshOptions::keepalive_interval`].
    pub keepalive_interval: Option<Duration>,
}

impl Target {
    /// A target with the defaults for everything but where and as whom.
    pub fn new(address: impl Into<String>, port: u16, user: impl Into<String>) -> Target {
        Target {
            address: address.into(),
            port,
            user: user.into(),
            key_files: Vec::new(),
            certificate_files: Vec::new(),
            become_root: false,
            known_hosts: None,
            extra_known_hosts: Vec::new(),
            agent: Agent::FromOptions,
            identities_only: false,
            host_key_policy: None,
            connect_timeout: None,
            keepalive_interval: None,
        }
    }

    /// `user@address:port`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// The ssh-agent a connection asks for keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// [`SshOptions::agent_socket`] (`SSH_AUTH_SOCK`).
    FromOptions,
    /// None (`IdentityAgent none`, or `IdentitiesOnly yes` with key files given).
    Off,
    /// This socket (`IdentityAgent PATH`).
    Socket(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Unknown and changed keys are refused (the default).
    Strict,
    /// Unknown keys are learned into the known_hosts file; changed keys are still refused, and
    /// so is any key of a host that has a `@cert-authority` line (certificate problems are
    /// never overridden).
    AcceptNew,
}

#[derive(Debug, Clone)]
pub struct SshOptions {
    pub host_key_policy: HostKeyPolicy,
    /// TCP connect + handshake + auth.
    pub connect_timeout: Duration,
    /// One remote command, start to exit.
    pub command_timeout: Duration,
    /// Used when the inventory names no known_hosts file: normally ~/.ssh/known_hosts.
    pub default_known_hosts: PathBuf,
    /// Silence after which a keepalive is sent; after `keepalive_max` unanswered ones the
    /// connection counts as lost (a dead host is noticed within interval x (max + 1)).
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
    /// ssh-agent socket (`SSH_AUTH_SOCK`), tried before key files.
    pub agent_socket: Option<PathBuf>,
    /// Decrypted key files, shared by every connection of the run.
    pub keys: Arc<KeyStore>,
}

impl SshOptions {
    /// Defaults from the environment: strict host keys, ~/.ssh/known_hosts, `SSH_AUTH_SOCK`,
    /// key passphrase from [`auth::PASSPHRASE_VAR`] or the terminal; connect timeout 10 s,
    /// command timeout 10 min, keepalive every 15 s (lost after 3 unanswered).
    pub fn from_env() -> SshOptions {
        let home = home_dir().unwrap_or_else(|| PathBuf::from("/"));
        SshOptions {
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(600),
            default_known_hosts: home.join(".ssh").join("known_hosts"),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            keys: Arc::new(KeyStore::from_env()),
        }
    }
}

/// `$HOME`, else the user database's home of the current user.
pub fn home_dir() -> Option<PathBuf> {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Some(PathBuf::from(home)),
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|user| user.dir),
    }
}

pub use postfleet_shell::ExecOutput;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// TCP connect failed or timed out, or the handshake did not finish in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// `host` is the known_hosts name (`name` or `[name]:port`), `fingerprint` the key type
    /// and `SHA256:...`.
    #[error(
        "host key for {host} is not known ({fingerprint}) in {known_hosts}: check that \
         fingerprint with the host's administrator, then add the key with `{}` or re-run \
         with --accept-new",
        keyscan_hint(host, known_hosts)
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    /// `known_hosts` is `FILE:LINE` of the entry holding the old key.
    #[error(
        "HOST KEY CHANGED for {host}: it now presents {fingerprint}, which differs from the key \
         in {known_hosts}; someone may be intercepting the connection. If the host was \
         reinstalled, remove the old entry (`{}`) and trust the new key",
        Line::new()
            .text("ssh-keygen -R")
            .word(host)
            .text("-f")
            .word(known_hosts.rsplit_once(':').map_or(known_hosts.as_str(), |(file, _)| file))
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    /// The host presented a certificate that is not accepted. `certificate` names it (key
    /// ID, serial, key and CA fingerprints), `reason` says why, `known_hosts` is the file
    /// judged against, `advice` what to do.
    #[error(
        "host certificate of {host} refused ({certificate}): {reason}; judged by {known_hosts}. \
         {advice}"
    )]
    HostCertificateRejected {
        host: String,
        certificate: String,
        reason: String,
        known_hosts: String,
        advice: String,
    },
    /// known_hosts has `@cert-authority` lines (`lines`, e.g. `3, 7`) for the host, which
    /// presented a plain key that is not listed: never learned, even with --accept-new.
    #[error(
        "{host} presented a plain host key ({fingerprint}) instead of a certificate, but \
         {known_hosts} expects a certificate for it (@cert-authority on line {lines}): not \
         trusting the key, and not learning it (--accept-new never does for a host with a CA). \
         Make the host's sshd present its certificate (HostCertificate in sshd_config), or, \
         after checking that fingerprint with the host's administrator, list the key itself"
    )]
    HostCertificateMissing {
        host: String,
        fingerprint: String,
        known_hosts: String,
        lines: String,
    },
    /// `user` is `user@address:port`; `detail` lists the agent, key files and certificates
    /// tried.
    #[error("authentication as {user} failed: {detail}")]
    AuthFailed { user: String, detail: String },
    /// `sudo -n` needs a password for `user` on `host`.
    #[error(
        "sudo requires a password for {user} on {host}: allow NOPASSWD for postfleet, or \
         connect as root"
    )]
    SudoPasswordRequired { user: String, host: String },
    /// A command did not finish within the command timeout.
    #[error("the command did not finish within {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Disconnected(String),
    #[error("{0}")]
    Other(String),
}

impl SshError {
    /// The host could not be reached or the connection was lost (rather than refused for a
    /// reason: key, auth, sudo). Counted as "unreachable" in summaries and exit codes.
    pub fn is_lost_connection(&self) -> bool {
        matches!(
            self,
            SshError::Unreachable(_) | SshError::Timeout(_) | SshError::Disconnected(_)
        )
    }
}

use postfleet_shell::Line;

/// `ssh-keyscan` line that appends `host` (a known_hosts name) to `file`.
fn keyscan_hint(host: &str, file: &str) -> String {
    match host
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]:"))
    {
        Some((name, port)) => Line::new()
            .text("ssh-keyscan -p")
            .word(port)
            .word(name)
            .text(">>")
            .word(file)
            .build(),
        None => Line::new()
            .text("ssh-keyscan")
            .word(host)
            .text(">>")
            .word(file)
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_messages_say_what_to_do() {
        let unknown = SshError::HostKeyUnknown {
            host: "[10.0.0.5]:2222".into(),
            fingerprint: "ssh-ed25519 SHA256:abc".into(),
            known_hosts: "/home/me/.ssh/known_hosts".into(),
        };
        let text = unknown.to_string();
        assert!(text.contains("SHA256:abc"), "{text}");
        assert!(
            text.contains("ssh-keyscan -p 2222 10.0.0.5 >> /home/me/.ssh/known_hosts"),
            "{text}"
        );
        assert!(text.contains("--accept-new"), "{text}");
        let bare = SshError::HostKeyUnknown {
            host: "mx1".into(),
            fingerprint: String::new(),
            known_hosts: "/tmp/my hosts".into(),
        };
        assert!(bare
            .to_string()
            .contains("ssh-keyscan mx1 >> '/tmp/my hosts'"));
        let changed = SshError::HostKeyChanged {
            host: "mx1".into(),
            fingerprint: "ssh-ed25519 SHA256:new".into(),
            known_hosts: "/k/known_hosts:7".into(),
        };
        let text = changed.to_string();
        assert!(text.contains("/k/known_hosts:7"), "{text}");
        assert!(
            text.contains("ssh-keygen -R mx1 -f /k/known_hosts"),
            "{text}"
        );
    }
}
