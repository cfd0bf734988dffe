//! SSH transport (russh): one connection per host, reused for every command.

use std::path::PathBuf;
use std::time::Duration;

use crate::inventory::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Unknown and changed keys are refused (the default).
    Strict,
    /// Unknown keys are learned into the known_hosts file; changed keys are still refused.
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
}

/// What one remote command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// None when the command died of a signal or the channel closed without a status.
    pub exit_status: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// TCP connect failed or timed out, or the handshake did not finish in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("host key for {host} is not known ({fingerprint}) in {known_hosts}")]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("HOST KEY CHANGED for {host} ({fingerprint}), see {known_hosts}")]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("authentication as {user} failed: {detail}")]
    AuthFailed { user: String, detail: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Disconnected(String),
    #[error("{0}")]
    Other(String),
}

pub use self::session::Session;

mod session {
    use super::*;

    /// An authenticated connection to one host.
    pub struct Session {
        _private: (),
    }

    impl Session {
        /// Connects, checks the host key, authenticates (agent, then key files).
        pub async fn connect(_conn: &Connection, _opts: &SshOptions) -> Result<Session, SshError> {
            todo!()
        }
        /// Runs `script` with `/bin/sh -s` (through `sudo -n` when the connection becomes
        /// root and the user is not root). `on_line` sees each stdout line as it arrives.
        pub async fn run_script(
            &self,
            _script: &str,
            _on_line: &mut (dyn FnMut(&str) + Send),
        ) -> Result<ExecOutput, SshError> {
            todo!()
        }
        /// Commands run so far on this connection (each is one round trip).
        pub fn round_trips(&self) -> u32 {
            todo!()
        }
        pub async fn close(self) {}
    }
}
