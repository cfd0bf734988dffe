//! Public-key authentication: ssh-agent first, then key files, each key file read (and its
//! passphrase asked) once per run however many hosts use it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::SshError;

/// Environment variable holding the passphrase of encrypted key files.
pub const PASSPHRASE_VAR: &str = "POSTFLEET_SSH_PASSPHRASE";

/// Key files tried, in order, when the inventory names none (those that exist).
pub const DEFAULT_KEY_NAMES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

type Loaded = Result<Arc<PrivateKey>, String>;

/// Runs a terminal prompt (the closure it is given) with the display out of the way, e.g.
/// `move |prompt| reporter.suspend(prompt)` so progress bars do not garble it.
pub type PromptWrapper = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

/// Decrypted private keys shared by every connection of a run: each file is read once, and an
/// encrypted one asks for its passphrase at most once.
pub struct KeyStore {
    passphrase: Option<String>,
    may_prompt: bool,
    keys: Mutex<HashMap<PathBuf, Arc<OnceCell<Loaded>>>>,
    /// Serialises terminal prompts so two keys never ask at the same time.
    prompt_lock: tokio::sync::Mutex<()>,
    prompt_wrapper: Mutex<Option<PromptWrapper>>,
    files_read: AtomicU32,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("may_prompt", &self.may_prompt)
            .field("files_read", &self.files_read())
            .finish()
    }
}

impl KeyStore {
    /// `passphrase` is tried on encrypted keys; without it, `may_prompt` allows asking on the
    /// terminal (/dev/tty, echo off).
    pub fn new(passphrase: Option<String>, may_prompt: bool) -> KeyStore {
        KeyStore {
            passphrase,
            may_prompt,
            keys: Mutex::new(HashMap::new()),
            prompt_lock: tokio::sync::Mutex::new(()),
            prompt_wrapper: Mutex::new(None),
            files_read: AtomicU32::new(0),
        }
    }

    /// Passphrase from [`PASSPHRASE_VAR`]; prompting only when a terminal can be opened.
    pub fn from_env() -> KeyStore {
        let passphrase = std::env::var(PASSPHRASE_VAR).ok();
        let has_terminal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok();
        KeyStore::new(passphrase, has_terminal)
    }

    /// Every later passphrase prompt runs inside `wrapper`.
    pub fn set_prompt_wrapper(&self, wrapper: PromptWrapper) {
        *self
            .prompt_wrapper
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(wrapper);
    }

    /// How many key files were actually read and decoded so far.
    pub fn files_read(&self) -> u32 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// The decrypted key in `path`, read on first use. Concurrent callers for the same file
    /// wait for one read (and one prompt); a failure is remembered too.
    pub async fn load(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        let cell = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.entry(path.to_path_buf()).or_default().clone()
        };
        cell.get_or_init(|| self.read_key(path)).await.clone()
    }

    /// Errors read `PATH (what is wrong and what to do)`, ready for the AuthFailed list.
    async fn read_key(&self, path: &Path) -> Loaded {
        self.files_read.fetch_add(1, Ordering::Relaxed);
        let shown = path.display().to_string();
        let problem = |reason: String| format!("{shown} ({reason})");
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| problem(format!("cannot read it: {e}")))?;
        let decode = |text: String, passphrase: Option<String>| async move {
            tokio::task::spawn_blocking(move || {
                russh::keys::decode_secret_key(&text, passphrase.as_deref())
            })
            .await
            .map_err(|e| e.to_string())
        };
        match decode(text.clone(), None).await? {
            Ok(key) => return Ok(Arc::new(key)),
            Err(russh::keys::Error::KeyIsEncrypted) => {}
            Err(e) => return Err(problem(format!("not a usable private key: {e}"))),
        }
        let (passphrase, source) = match &self.passphrase {
            Some(p) => (p.clone(), format!("the passphrase in {PASSPHRASE_VAR}")),
            None if self.may_prompt => {
                let answer = self.prompt(&shown).await.map_err(|e| {
                    problem(format!(
                        "encrypted, and asking for its passphrase failed: {e}; set \
                         {PASSPHRASE_VAR}, or add the key to ssh-agent"
                    ))
                })?;
                (answer, "the passphrase typed".to_string())
            }
            None => {
                return Err(problem(format!(
                    "encrypted, and no terminal to ask for its passphrase: set \
                     {PASSPHRASE_VAR}, or add the key to ssh-agent"
                )))
            }
        };
        match decode(text, Some(passphrase)).await? {
            Ok(key) => Ok(Arc::new(key)),
            Err(e) => Err(problem(format!("{source} does not decrypt it: {e}"))),
        }
    }

    async fn prompt(&self, shown: &str) -> Result<String, String> {
        let _turn = self.prompt_lock.lock().await;
        let prompt = format!("Enter passphrase for key {shown}: ");
        let wrapper = self
            .prompt_wrapper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let ask = move || {
            let mut answer = None;
            let mut read = || answer = Some(rpassword::prompt_password(&prompt));
            match wrapper {
                Some(wrapper) => wrapper(&mut read),
                None => read(),
            }
            answer.unwrap_or_else(|| Err(std::io::Error::other("the prompt did not run")))
        };
        tokio::task::spawn_blocking(ask)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

/// Key files to try: the inventory's, else the default ones that exist under `home`/.ssh.
pub fn key_files(configured: &[PathBuf], home: Option<&Path>) -> Vec<PathBuf> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let Some(home) = home else {
        return Vec::new();
    };
    DEFAULT_KEY_NAMES
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .filter(|path| path.exists())
        .collect()
}

/// Where authentication may get its keys from.
pub struct Sources<'a> {
    pub agent_socket: Option<&'a Path>,
    pub key_files: &'a [PathBuf],
    pub keys: &'a KeyStore,
}

/// Tries the agent's keys, then each key file, until the server accepts one. Network steps
/// must finish by `deadline`; the deadline moves by the time spent reading keys (a passphrase
/// prompt must not eat the connect timeout).
pub async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    sources: Sources<'_>,
    mut deadline: Instant,
) -> Result<(), SshError> {
    let mut tried: Vec<String> = Vec::new();
    if sources.agent_socket.is_none() {
        tried.push("no ssh-agent (SSH_AUTH_SOCK unset)".into());
    }
    if sources.key_files.is_empty() {
        tried.push(
            "no key file (none in the inventory's ssh_key_file, no ~/.ssh/id_ed25519, \
             id_ecdsa or id_rsa)"
                .into(),
        );
    }
    let failed = |tried: &[String]| SshError::AuthFailed {
        user: user.to_string(),
        detail: format!("tried {}", tried.join("; ")),
    };
    let mut rsa_hash: Option<Option<HashAlg>> = None;

    if let Some(socket) = sources.agent_socket {
        let shown = socket.display();
        let identities = async {
            let mut agent = AgentClient::connect_uds(socket).await?;
            let identities = agent.request_identities().await?;
            Ok::<_, russh::keys::Error>((agent, identities))
        };
        match within(deadline, identities).await? {
            Err(e) => tried.push(format!("ssh-agent at {shown} (unusable: {e})")),
            Ok((_, identities)) if identities.is_empty() => {
                tried.push(format!("ssh-agent at {shown} (holds no key)"))
            }
            Ok((mut agent, identities)) => {
                let mut offered = 0;
                for identity in identities {
                    let AgentIdentity::PublicKey { key, .. } = identity else {
                        continue;
                    };
                    let hash = if key.algorithm().is_rsa() {
                        rsa_hash_for(handle, &mut rsa_hash, deadline).await?
                    } else {
                        None
                    };
                    offered += 1;
                    let attempt = handle.authenticate_publickey_with(user, key, hash, &mut agent);
                    match within(deadline, attempt).await? {
                        Ok(AuthResult::Success) => return Ok(()),
                        Ok(AuthResult::Failure { .. }) => {}
                        Err(e) => {
                            tried.push(format!("ssh-agent at {shown} ({e})"));
                            if handle.is_closed() {
                                return Err(failed(&tried));
                            }
                        }
                    }
                }
                tried.push(format!("ssh-agent at {shown} ({offered} keys refused)"));
            }
        }
    }

    for path in sources.key_files {
        let started = Instant::now();
        let loaded = sources.keys.load(path).await;
        deadline += started.elapsed();
        let key = match loaded {
            Ok(key) => key,
            Err(reason) => {
                tried.push(reason);
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash_for(handle, &mut rsa_hash, deadline).await?
        } else {
            None
        };
        let with_hash = PrivateKeyWithHashAlg::new(key, hash);
        match within(deadline, handle.authenticate_publickey(user, with_hash)).await? {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { .. }) => tried.push(format!("{} (refused)", path.display())),
            Err(e) => {
                tried.push(format!("{} ({e})", path.display()));
                if handle.is_closed() {
                    return Err(failed(&tried));
                }
            }
        }
    }
    Err(failed(&tried))
}

/// The RSA signature hash the server accepts (SHA-512 or SHA-256; SHA-1 `ssh-rsa` only for a
/// server that announces nothing better, which OpenSSH >= 8.8 never is). Asked once.
async fn rsa_hash_for<H: Handler>(
    handle: &Handle<H>,
    cached: &mut Option<Option<HashAlg>>,
    deadline: Instant,
) -> Result<Option<HashAlg>, SshError> {
    if let Some(hash) = *cached {
        return Ok(hash);
    }
    let hash = within(deadline, handle.best_supported_rsa_hash())
        .await?
        .ok()
        .flatten()
        .flatten();
    *cached = Some(hash);
    Ok(hash)
}

async fn within<F: std::future::Future>(deadline: Instant, step: F) -> Result<F::Output, SshError> {
    tokio::time::timeout_at(deadline, step)
        .await
        .map_err(|_| SshError::Unreachable("authentication did not finish in time".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_key_files_are_those_that_exist() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/id_rsa"), "x").unwrap();
        std::fs::write(home.path().join(".ssh/id_ed25519"), "x").unwrap();
        assert_eq!(
            key_files(&[], Some(home.path())),
            vec![
                home.path().join(".ssh/id_ed25519"),
                home.path().join(".ssh/id_rsa")
            ]
        );
        let named = vec![PathBuf::from("/keys/deploy")];
        assert_eq!(key_files(&named, Some(home.path())), named);
        assert!(key_files(&[], None).is_empty());
    }

    #[tokio::test]
    async fn a_missing_key_file_is_read_once_and_named() {
        let store = KeyStore::new(None, false);
        let path = Path::new("/nonexistent/postfleet/id_ed25519");
        let (a, b) = tokio::join!(store.load(path), store.load(path));
        assert!(a.unwrap_err().contains("/nonexistent/postfleet/id_ed25519"));
        assert!(b.is_err());
        assert_eq!(store.files_read(), 1);
    }
}
