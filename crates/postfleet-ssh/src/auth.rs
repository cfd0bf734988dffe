//! Public-key authentication: ssh-agent first (its certificates too), then key files, each key
//! file read (and its passphrase asked) once per run however many hosts use it. User
//! certificates (`CertificateFile`, `KEY-cert.pub` beside a key file) are offered with the
//! agent key or key file holding their private key, before that plain key, as OpenSSH does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::ssh_encoding::Encode;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
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
    /// Certificates named explicitly (`CertificateFile`); `KEY-cert.pub` beside each key file
    /// is added to them.
    pub certificate_files: &'a [PathBuf],
    /// Offer only the agent's keys that the key files (their `.pub`) or the certificates
    /// name (`IdentitiesOnly yes`).
    pub identities_only: bool,
    pub keys: &'a KeyStore,
}

/// The public keys `IdentitiesOnly` allows from the agent: each key file's `.pub` and each
/// certificate's key (files that cannot be read allow nothing).
fn named_identities(sources: &Sources<'_>) -> Vec<russh::keys::ssh_key::public::KeyData> {
    let mut keys = Vec::new();
    for file in sources.key_files {
        let mut pub_file = file.as_os_str().to_os_string();
        pub_file.push(".pub");
        if let Ok(text) = std::fs::read_to_string(PathBuf::from(pub_file)) {
            if let Ok(key) = PublicKey::from_openssh(text.trim()) {
                keys.push(key.key_data().clone());
            }
        }
        if let Ok(cert) = read_certificate(&certificate_beside(file)) {
            keys.push(cert.public_key().clone());
        }
    }
    for file in sources.certificate_files {
        if let Ok(cert) = read_certificate(file) {
            keys.push(cert.public_key().clone());
        }
    }
    keys
}

/// `KEY-cert.pub` beside the key file `KEY`, where OpenSSH looks for its certificate.
pub fn certificate_beside(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_os_string();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// A user certificate from a file, to offer with the key that holds its private key.
struct UserCert {
    cert: Certificate,
    path: PathBuf,
    /// Offered once (with the agent's key or a key file's).
    offered: bool,
}

/// Reads an OpenSSH certificate (`ssh-ed25519-cert-v01@openssh.com AAAA... comment`).
pub fn read_certificate(path: &Path) -> Result<Certificate, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    Certificate::from_openssh(text.trim()).map_err(|e| format!("not an OpenSSH certificate: {e}"))
}

/// The explicit certificates, then those beside the key files (only when they exist); the
/// unreadable ones go to `tried`.
fn user_certificates(sources: &Sources<'_>, tried: &mut Vec<String>) -> Vec<UserCert> {
    let mut certs: Vec<UserCert> = Vec::new();
    let beside = sources
        .key_files
        .iter()
        .map(|key| certificate_beside(key))
        .filter(|path| path.exists());
    for path in sources.certificate_files.iter().cloned().chain(beside) {
        if certs.iter().any(|c| c.path == path) {
            continue;
        }
        match read_certificate(&path) {
            Ok(cert) => certs.push(UserCert {
                cert,
                path,
                offered: false,
            }),
            Err(why) => tried.push(format!("certificate {} ({why})", path.display())),
        }
    }
    certs
}

/// `key ID "x", serial N` and, when the certificate cannot work for `user` now, why (the
/// server's refusal does not say).
fn certificate_note(cert: &Certificate, user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut note = format!("key ID \"{}\", serial {}", cert.key_id(), cert.serial());
    let principals = cert.valid_principals();
    if cert.cert_type() != CertType::User {
        note.push_str("; it is a host certificate, not a user certificate");
    } else if now >= cert.valid_before() {
        note.push_str(&format!(
            "; it expired at {}",
            super::known_hosts::utc_time(cert.valid_before())
        ));
    } else if now < cert.valid_after() {
        note.push_str(&format!(
            "; it is not valid before {}",
            super::known_hosts::utc_time(cert.valid_after())
        ));
    } else if principals.is_empty() {
        note.push_str("; it lists no principals, which sshd refuses");
    } else if !principals.iter().any(|p| p == user) {
        note.push_str(&format!(
            "; it is not valid for user {user}, only for {}",
            principals.join(", ")
        ));
    } else {
        note.push_str("; is its CA in the server's TrustedUserCAKeys?");
    }
    note
}

/// Signs authentication requests with a private key read from a file, for certificates (the
/// RSA hash chosen as for plain keys; russh's own certificate method cannot choose it).
struct KeySigner(Arc<PrivateKey>);

#[derive(Debug)]
enum SignError {
    Send,
    Key(String),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::Send => write!(f, "the connection is gone"),
            SignError::Key(why) => write!(f, "cannot sign with the key: {why}"),
        }
    }
}

impl From<russh::SendError> for SignError {
    fn from(_: russh::SendError) -> SignError {
        SignError::Send
    }
}

impl russh::Signer for KeySigner {
    type Error = SignError;

    fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        hash_alg: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, SignError>> + Send {
        let signed = sign_appended(&self.0, hash_alg, to_sign);
        async move { signed }
    }
}

/// Signs a certificate's authentication with the agent's plain key for it (as OpenSSH does
/// for a `CertificateFile` whose key only the agent holds: the agent knows the key, not the
/// certificate, and refuses a request naming the certificate).
struct AgentKeySigner<'a> {
    agent: &'a mut AgentClient<tokio::net::UnixStream>,
    key: AgentIdentity,
}

impl russh::Signer for AgentKeySigner<'_> {
    type Error = russh::AgentAuthError;

    async fn auth_sign(
        &mut self,
        _certificate: &AgentIdentity,
        hash_alg: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, Self::Error> {
        self.agent
            .sign_request(&self.key, hash_alg, to_sign)
            .await
            .map_err(Into::into)
    }
}

/// `data` followed by the signature over it as an SSH string, as russh expects a signer's
/// answer.
fn sign_appended(
    key: &PrivateKey,
    hash_alg: Option<HashAlg>,
    mut data: Vec<u8>,
) -> Result<Vec<u8>, SignError> {
    use russh::keys::signature::Signer;
    let signature = match key.key_data() {
        KeypairData::Rsa(pair) => (pair, hash_alg).try_sign(&data),
        _ => key.try_sign(&data),
    }
    .map_err(|e| SignError::Key(e.to_string()))?;
    signature
        .encode_prefixed(&mut data)
        .map_err(|e| SignError::Key(e.to_string()))?;
    Ok(data)
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
    let mut certs = user_certificates(&sources, &mut tried);

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
                let allowed = sources.identities_only.then(|| named_identities(&sources));
                let identities = identities.into_iter().filter(|identity| {
                    let data = match identity {
                        AgentIdentity::PublicKey { key, .. } => key.key_data(),
                        AgentIdentity::Certificate { certificate, .. } => certificate.public_key(),
                    };
                    allowed.as_ref().is_none_or(|keys| keys.contains(data))
                });
                for identity in identities {
                    let key = match identity {
                        AgentIdentity::PublicKey { key, .. } => key,
                        AgentIdentity::Certificate { certificate, .. } => {
                            let rsa = certificate.public_key().algorithm().is_rsa();
                            let hash = if rsa {
                                rsa_hash_for(handle, &mut rsa_hash, deadline).await?
                            } else {
                                None
                            };
                            let note = certificate_note(&certificate, user);
                            let attempt = handle.authenticate_certificate_with(
                                user,
                                certificate,
                                hash,
                                &mut agent,
                            );
                            match within(deadline, attempt).await? {
                                Ok(AuthResult::Success) => return Ok(()),
                                Ok(AuthResult::Failure { .. }) => tried.push(format!(
                                    "ssh-agent at {shown}: certificate ({note}) (refused)"
                                )),
                                Err(e) => {
                                    tried.push(format!(
                                        "ssh-agent at {shown}: certificate ({note}) ({e})"
                                    ));
                                    if handle.is_closed() {
                                        return Err(failed(&tried));
                                    }
                                }
                            }
                            continue;
                        }
                    };
                    let hash = if key.algorithm().is_rsa() {
                        rsa_hash_for(handle, &mut rsa_hash, deadline).await?
                    } else {
                        None
                    };
                    for user_cert in certs
                        .iter_mut()
                        .filter(|c| !c.offered && c.cert.public_key() == key.key_data())
                    {
                        user_cert.offered = true;
                        let note = certificate_note(&user_cert.cert, user);
                        let mut signer = AgentKeySigner {
                            agent: &mut agent,
                            key: AgentIdentity::PublicKey {
                                key: key.clone(),
                                comment: String::new(),
                            },
                        };
                        let attempt = handle.authenticate_certificate_with(
                            user,
                            user_cert.cert.clone(),
                            hash,
                            &mut signer,
                        );
                        let shown_cert = user_cert.path.display();
                        match within(deadline, attempt).await? {
                            Ok(AuthResult::Success) => return Ok(()),
                            Ok(AuthResult::Failure { .. }) => tried.push(format!(
                                "certificate {shown_cert} ({note}) with the ssh-agent's key \
                                 (refused)"
                            )),
                            Err(e) => {
                                tried.push(format!(
                                    "certificate {shown_cert} ({note}) with the ssh-agent's key \
                                     ({e})"
                                ));
                                if handle.is_closed() {
                                    return Err(failed(&tried));
                                }
                            }
                        }
                    }
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
        for user_cert in certs
            .iter_mut()
            .filter(|c| !c.offered && c.cert.public_key() == key.public_key().key_data())
        {
            user_cert.offered = true;
            let note = certificate_note(&user_cert.cert, user);
            let shown_cert = user_cert.path.display();
            let mut signer = KeySigner(key.clone());
            let attempt = handle.authenticate_certificate_with(
                user,
                user_cert.cert.clone(),
                hash,
                &mut signer,
            );
            match within(deadline, attempt).await? {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(AuthResult::Failure { .. }) => tried.push(format!(
                    "certificate {shown_cert} ({note}) with {} (refused)",
                    path.display()
                )),
                Err(e) => {
                    tried.push(format!(
                        "certificate {shown_cert} ({note}) with {} ({e})",
                        path.display()
                    ));
                    if handle.is_closed() {
                        return Err(failed(&tried));
                    }
                }
            }
        }
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
    for user_cert in certs.iter().filter(|c| !c.offered) {
        tried.push(format!(
            "certificate {} (not offered: neither the ssh-agent nor a key file holds its key \
             {}; name that key with ssh_key_file / IdentityFile, or add it to the agent)",
            user_cert.path.display(),
            user_cert.cert.public_key().fingerprint(HashAlg::Sha256)
        ));
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

    fn keygen(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("ssh-keygen")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("ssh-keygen runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn certificates_beside_key_files_and_named_ones_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["ca", "a", "b"] {
            keygen(d, &["-q", "-t", "ed25519", "-N", "", "-f", name]);
        }
        keygen(d, &["-q", "-s", "ca", "-I", "a-id", "-n", "root", "a.pub"]);
        keygen(d, &["-q", "-s", "ca", "-I", "b-id", "-n", "root", "b.pub"]);
        std::fs::rename(d.join("b-cert.pub"), d.join("issued")).unwrap();
        std::fs::write(d.join("junk-cert.pub"), "not a certificate\n").unwrap();
        assert_eq!(certificate_beside(&d.join("a")), d.join("a-cert.pub"));
        let store = KeyStore::new(None, false);
        let keys = [d.join("a"), d.join("b"), d.join("junk")];
        let named = [d.join("issued"), d.join("missing"), d.join("a-cert.pub")];
        let sources = Sources {
            agent_socket: None,
            key_files: &keys,
            certificate_files: &named,
            identities_only: false,
            keys: &store,
        };
        let mut tried = Vec::new();
        let certs = user_certificates(&sources, &mut tried);
        let ids: Vec<&str> = certs.iter().map(|c| c.cert.key_id()).collect();
        // Named ones first; a-cert.pub once; b has no cert beside it (silently).
        assert_eq!(ids, ["b-id", "a-id"]);
        assert_eq!(tried.len(), 2, "{tried:?}");
        assert!(tried[0].contains("missing (cannot read it"), "{tried:?}");
        assert!(
            tried[1].contains("junk-cert.pub (not an OpenSSH certificate"),
            "{tried:?}"
        );
    }

    #[test]
    fn a_certificate_that_cannot_work_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["ca", "k"] {
            keygen(d, &["-q", "-t", "ed25519", "-N", "", "-f", name]);
        }
        let note = |extra: &[&str], user: &str| {
            let mut args = vec!["-q", "-s", "ca", "-I", "ops", "-z", "9"];
            args.extend_from_slice(extra);
            args.push("k.pub");
            keygen(d, &args);
            certificate_note(&read_certificate(&d.join("k-cert.pub")).unwrap(), user)
        };
        let expired = note(&["-n", "root", "-V", "20200101:20200102"], "root");
        assert!(expired.starts_with("key ID \"ops\", serial 9"), "{expired}");
        assert!(
            expired.contains("expired at 2020-01-02 00:00:00 UTC"),
            "{expired}"
        );
        let early = note(&["-n", "root", "-V", "20990101:21000101"], "root");
        assert!(early.contains("not valid before 2099-01-01"), "{early}");
        let other = note(&["-n", "deploy,backup"], "root");
        assert!(
            other.contains("not valid for user root, only for deploy, backup"),
            "{other}"
        );
        assert!(note(&["-h", "-n", "root"], "root").contains("host certificate"));
        assert!(note(&[], "root").contains("no principals"));
        assert!(note(&["-n", "root"], "root").contains("TrustedUserCAKeys"));
    }

    #[test]
    fn file_keys_sign_with_the_rsa_hash_asked_for() {
        use russh::keys::signature::Verifier;
        use russh::keys::ssh_encoding::Decode;
        let dir = tempfile::tempdir().unwrap();
        keygen(
            dir.path(),
            &["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", "rsa"],
        );
        keygen(dir.path(), &["-q", "-t", "ed25519", "-N", "", "-f", "ed"]);
        for (name, hash, algorithm) in [
            ("rsa", Some(HashAlg::Sha512), "rsa-sha2-512"),
            ("rsa", Some(HashAlg::Sha256), "rsa-sha2-256"),
            ("ed", None, "ssh-ed25519"),
        ] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            let key = russh::keys::decode_secret_key(&text, None).unwrap();
            let signed = sign_appended(&key, hash, b"to sign".to_vec()).unwrap();
            assert_eq!(&signed[..7], b"to sign");
            let mut rest = &signed[7..];
            let blob = Vec::<u8>::decode(&mut rest).unwrap();
            assert!(rest.is_empty());
            let signature = russh::keys::ssh_key::Signature::decode(&mut blob.as_slice()).unwrap();
            assert_eq!(signature.algorithm().as_str(), algorithm);
            key.public_key()
                .key_data()
                .verify(b"to sign", &signature)
                .unwrap();
        }
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
