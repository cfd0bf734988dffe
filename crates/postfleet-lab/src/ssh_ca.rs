//! `lab up --ssh-ca`: the lab as a fleet run with OpenSSH certificates. A lab host CA signs
//! every host's host keys (for its address, name and FQDN), sshd presents those certificates
//! and trusts a lab user CA, the lab key gets a `lab_ed25519-cert.pub` from that user CA
//! (principals root and deploy), and the lab's known_hosts is one `@cert-authority` line.
//!
//! The CA keys live in the state dir (`ssh-ca/`); the lab has certificates while they exist,
//! so `add` and `reset` certify new host keys too, and `up` without `--ssh-ca` removes them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::state::{HostState, LabState, Names};
use super::sys;

/// The sshd drop-in (in the host) that presents the certificates and trusts the user CA.
const SSHD_DROP_IN: &str = "etc/ssh/sshd_config.d/postfleet-lab-ca.conf";
/// The user CA's public key, in the host.
const USER_CA_IN_HOST: &str = "etc/ssh/postfleet-lab-user-ca.pub";

fn dir(names: &Names) -> PathBuf {
    names.state_dir.join("ssh-ca")
}

fn host_ca(names: &Names) -> PathBuf {
    dir(names).join("host_ca")
}

fn user_ca(names: &Names) -> PathBuf {
    dir(names).join("user_ca")
}

/// The lab key's certificate, beside it (where OpenSSH and postfleet look for it).
pub fn lab_key_certificate(names: &Names) -> PathBuf {
    let mut path = names.key_path().into_os_string();
    path.push("-cert.pub");
    PathBuf::from(path)
}

/// Whether the lab runs with certificates.
pub fn enabled(names: &Names) -> bool {
    host_ca(names).exists() && user_ca(names).exists()
}

/// Makes the CAs (once) and the lab key's certificate when `wanted`; removes them otherwise.
/// The lab key must exist.
pub fn configure(names: &Names, wanted: bool) -> Result<()> {
    if !wanted {
        let _ = fs::remove_file(lab_key_certificate(names));
        return sys::remove_tree(&dir(names));
    }
    let dir = dir(names);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    for (ca, comment) in [(host_ca(names), "host"), (user_ca(names), "user")] {
        if ca.exists() && ca.with_extension("pub").exists() {
            continue;
        }
        let _ = fs::remove_file(&ca);
        let _ = fs::remove_file(ca.with_extension("pub"));
        sys::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("postfleet-lab-{}-{comment}-ca", names.lab))
                .arg("-f")
                .arg(&ca),
        )?;
    }
    let key = names.key_path();
    sys::run(
        Command::new("ssh-keygen")
            .arg("-q")
            .arg("-s")
            .arg(user_ca(names))
            .args(["-I", &format!("postfleet-lab-{}", names.lab)])
            .args(["-n", "root,deploy"])
            .arg(key.with_extension("pub")),
    )?;
    Ok(())
}

/// Certifies the host keys in a prepared host's `upper` layer and writes the sshd drop-in
/// and the user CA into it (no-op unless [`enabled`]).
pub fn certify_host(names: &Names, upper: &Path, host: &HostState, fqdn: &str) -> Result<()> {
    if !enabled(names) {
        return Ok(());
    }
    let principals = format!("{},{},{fqdn}", host.address, host.name);
    let mut drop_in = String::from("# postfleet lab --ssh-ca\n");
    for key_type in super::host::HOST_KEY_TYPES {
        let public = upper.join(format!("etc/ssh/ssh_host_{key_type}_key.pub"));
        if !public.exists() {
            bail!("{} has no {key_type} host key to certify", host.name);
        }
        sys::run(
            Command::new("ssh-keygen")
                .arg("-q")
                .arg("-s")
                .arg(host_ca(names))
                .arg("-h")
                .args(["-I", &format!("{}-{key_type}", host.name)])
                .args(["-n", &principals])
                .arg(&public),
        )?;
        drop_in.push_str(&format!(
            "HostCertificate /etc/ssh/ssh_host_{key_type}_key-cert.pub\n"
        ));
    }
    drop_in.push_str(&format!("TrustedUserCAKeys /{USER_CA_IN_HOST}\n"));
    let user_ca_pub = fs::read(user_ca(names).with_extension("pub"))?;
    for (path, text) in [
        (SSHD_DROP_IN, drop_in.into_bytes()),
        (USER_CA_IN_HOST, user_ca_pub),
    ] {
        let target = upper.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        sys::write_atomic(&target, &text, 0o644)?;
    }
    Ok(())
}

/// The known_hosts of a lab with certificates: one `@cert-authority` line for every host's
/// address (None unless [`enabled`]).
pub fn known_hosts_lines(names: &Names, state: &LabState) -> Result<Option<Vec<String>>> {
    if !enabled(names) {
        return Ok(None);
    }
    let path = host_ca(names).with_extension("pub");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut words = text.split_whitespace();
    let (Some(algorithm), Some(blob)) = (words.next(), words.next()) else {
        bail!("{} is not an ssh public key", path.display());
    };
    let addresses: Vec<String> = state.hosts.iter().map(|h| h.address.to_string()).collect();
    Ok(Some(vec![format!(
        "@cert-authority {} {algorithm} {blob}",
        addresses.join(",")
    )]))
}
