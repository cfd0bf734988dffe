//! One host: its identity written into its overlay's upper layer ("prepare"), its boot (a
//! helper process that mounts the overlay in a private mount namespace and starts
//! systemd-nspawn or a plain init), and the wait for it to be ready.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::net::{Leg, Subnet};
use super::state::{HostFiles, HostState, Mode, Names, Role};
use super::sys::{self, ProcRef};

const PLAIN_INIT: &str = include_str!("plain-init.sh");
const PLAIN_INIT_PATH: &str = "usr/local/sbin/postfleet-lab-init";
const PLAIN_READY_FILE: &str = "run/postfleet-lab-ready";
/// Present on a bastion: its plain init starts no Postfix.
const BASTION_MARKER: &str = "etc/postfleet-lab-bastion";
const BASTION_SSHD: &str =
    "# postfleet lab bastion: a jump host for the internal network behind it.\n\
AllowTcpForwarding yes\n\
PermitOpen any\n";
pub(crate) const HOST_KEY_TYPES: [&str; 2] = ["ed25519", "ecdsa"];
/// How long a host may take from start to ready.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Writes into a host's upper layer while the overlay is not mounted: new directories copy
/// the owner and mode of the same directory in the base, so the merged view looks native.
struct Upper<'a> {
    lower: &'a Path,
    upper: PathBuf,
}

impl Upper<'_> {
    fn ensure_dir(&self, rel: &str) -> Result<()> {
        let mut partial = PathBuf::new();
        for component in Path::new(rel).components() {
            partial.push(component);
            let target = self.upper.join(&partial);
            if target.exists() {
                continue;
            }
            fs::create_dir(&target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            let (mode, uid, gid) = match fs::symlink_metadata(self.lower.join(&partial)) {
                Ok(m) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid()),
                _ => (0o755, 0, 0),
            };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
            std::os::unix::fs::chown(&target, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// Writes a file; `owner_like` names a base path whose owner the file takes (else root).
    fn write(&self, rel: &str, contents: &[u8], mode: u32, owner_like: Option<&str>) -> Result<()> {
        if let Some(parent) = Path::new(rel).parent() {
            self.ensure_dir(&parent.to_string_lossy())?;
        }
        let target = self.upper.join(rel);
        if target.exists() {
            fs::remove_file(&target)?;
        }
        fs::write(&target, contents)
            .with_context(|| format!("cannot write {}", target.display()))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        let (uid, gid) = match owner_like.map(|p| fs::metadata(self.lower.join(p))) {
            Some(Ok(m)) => (m.uid(), m.gid()),
            _ => (0, 0),
        };
        std::os::unix::fs::chown(&target, Some(uid), Some(gid))?;
        Ok(())
    }

    /// The merged content of a file: the upper copy if there is one, else the base's.
    fn read(&self, rel: &str) -> Result<String> {
        let upper = self.upper.join(rel);
        let path = if upper.exists() {
            upper
        } else {
            self.lower.join(rel)
        };
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// What `prepare` needs to know about the lab.
pub struct PrepareContext<'a> {
    pub names: &'a Names,
    pub lab_public_key: &'a str,
    pub gateway: Ipv4Addr,
    /// Subnet of each network: [0] the lab's bridge, [k] internal network k.
    pub subnets: &'a [Subnet],
}

/// A host's interfaces: its address on its network, and a bastion's on the one behind it.
fn legs(ctx: &PrepareContext, host: &HostState) -> Result<Vec<Leg>> {
    let prefix = |k: u32| {
        ctx.subnets
            .get(k as usize)
            .map(Subnet::prefix)
            .ok_or_else(|| anyhow!("{}: the lab records no network {k}", host.name))
    };
    let mut legs = vec![Leg {
        network: host.network,
        address: host.address,
        prefix: prefix(host.network)?,
    }];
    if let Some(inner) = host.inner_address {
        legs.push(Leg {
            network: host.network + 1,
            address: inner,
            prefix: prefix(host.network + 1)?,
        });
    }
    Ok(legs)
}

/// Makes a host ready to boot: network namespace and veth, and (for a fresh host) its identity
/// in the upper layer. Returns whether the host was fresh (its upper layer was empty).
pub fn prepare(ctx: &PrepareContext, host: &HostState) -> Result<bool> {
    let files = HostFiles::new(ctx.names, &host.name);
    let upper = Upper {
        lower: &host.base,
        upper: files.upper(),
    };
    let fresh = !upper
        .upper
        .join("etc/ssh/ssh_host_ed25519_key.pub")
        .exists();
    if fresh {
        sys::remove_tree(&files.upper())?;
    }
    // The work dir is overlayfs scratch space; a fresh one avoids leftovers of a killed host.
    sys::remove_tree(&files.work())?;
    for dir in [files.upper(), files.work(), files.root()] {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for path in [host.base.as_path(), files.dir.as_path()] {
        let text = path.to_string_lossy();
        if text.contains([',', ':']) {
            bail!("overlayfs cannot use a path with ',' or ':': {text}");
        }
    }

    super::net::create_host_network(ctx.names, &host.name, &legs(ctx, host)?)?;
    super::internal::route_to_sink(ctx.names, host, ctx.subnets, ctx.gateway)?;

    let fqdn = format!("{}.{}", host.name, ctx.names.mail_domain());
    if fresh {
        write_identity(&upper, &host.name, &fqdn)?;
    }
    super::ssh_ca::certify_host(ctx.names, &files.upper(), host, &fqdn)?;
    let hosts_file = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         {}\t{fqdn} {}\n{}\tgw.{} gw\n",
        host.address,
        host.name,
        ctx.gateway,
        ctx.names.mail_domain()
    );
    upper.write("etc/hosts", hosts_file.as_bytes(), 0o644, None)?;
    let authorized = format!("{}\n", ctx.lab_public_key.trim());
    upper.write(
        "root/.ssh/authorized_keys",
        authorized.as_bytes(),
        0o600,
        None,
    )?;
    upper.write(
        "home/deploy/.ssh/authorized_keys",
        authorized.as_bytes(),
        0o600,
        Some("home/deploy/.ssh"),
    )?;
    if host.mode == Mode::Plain {
        upper.write(PLAIN_INIT_PATH, PLAIN_INIT.as_bytes(), 0o755, None)?;
    }
    if host.role == Role::Bastion {
        upper.write(BASTION_MARKER, b"", 0o644, None)?;
        upper.write(
            "etc/ssh/sshd_config.d/postfleet-lab-bastion.conf",
            BASTION_SSHD.as_bytes(),
            0o644,
            None,
        )?;
    }
    Ok(fresh)
}

fn write_identity(upper: &Upper, name: &str, fqdn: &str) -> Result<()> {
    upper.write("etc/hostname", format!("{name}\n").as_bytes(), 0o644, None)?;
    upper.write("etc/mailname", format!("{fqdn}\n").as_bytes(), 0o644, None)?;
    upper.write(
        "etc/machine-id",
        format!("{}\n", random_hex(16)?).as_bytes(),
        0o444,
        None,
    )?;
    let mut main_cf = upper.read("etc/postfix/main.cf")?;
    if !main_cf.ends_with('\n') {
        main_cf.push('\n');
    }
    main_cf.push_str(&format!("myhostname = {fqdn}\n"));
    upper.write("etc/postfix/main.cf", main_cf.as_bytes(), 0o644, None)?;

    upper.ensure_dir("etc/ssh")?;
    for key_type in HOST_KEY_TYPES {
        let key = upper.upper.join(format!("etc/ssh/ssh_host_{key_type}_key"));
        sys::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", key_type, "-N", "", "-C"])
                .arg(format!("root@{name}"))
                .arg("-f")
                .arg(&key),
        )?;
    }
    Ok(())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// known_hosts lines for a prepared host, from the public host keys in its upper layer,
/// under each of its addresses.
pub fn known_hosts_lines(names: &Names, host: &HostState) -> Result<Vec<String>> {
    let files = HostFiles::new(names, &host.name);
    let mut lines = Vec::new();
    for key_type in HOST_KEY_TYPES {
        let path = files
            .upper()
            .join(format!("etc/ssh/ssh_host_{key_type}_key.pub"));
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut words = text.split_whitespace();
        let (Some(algo), Some(blob)) = (words.next(), words.next()) else {
            bail!("{} is not an ssh public key", path.display());
        };
        for address in std::iter::once(host.address).chain(host.inner_address) {
            lines.push(format!("{address} {algo} {blob}"));
        }
    }
    Ok(lines)
}

/// Starts a host's boot helper in the background (own session, outliving this command).
pub fn spawn_boot(names: &Names, host: &HostState) -> Result<()> {
    let files = HostFiles::new(names, &host.name);
    for stale in [files.supervisor_pid(), files.init_pid()] {
        let _ = fs::remove_file(stale);
    }
    let console = File::create(files.console_log())
        .with_context(|| format!("cannot write {}", files.console_log().display()))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("postfleet")
        .args([
            "lab",
            "--lab",
            &names.lab,
            "boot-host",
            &host.name,
            "--mode",
        ])
        .arg(host.mode.as_str())
        .arg("--lower")
        .arg(&host.base)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start the boot helper of {}", host.name))?;
    let proc_ref = ProcRef::of(child.id() as i32).ok_or_else(|| {
        anyhow!(
            "{}: boot helper exited at once:\n{}",
            host.name,
            sys::tail(&files.console_log(), 10)
        )
    })?;
    proc_ref.write(&files.supervisor_pid())
}

/// Waits until a host answers on port 22 and has finished booting (systemd: the system
/// state is no longer "starting"; plain: its init wrote the ready file).
pub fn wait_ready(names: &Names, host: &HostState) -> Result<()> {
    let files = HostFiles::new(names, &host.name);
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let ssh_addr = SocketAddr::from((host.address, 22));
    let died = |what: &str| {
        anyhow!(
            "{}: {what}; last lines of {}:\n{}",
            host.name,
            files.console_log().display(),
            sys::tail(&files.console_log(), 15)
        )
    };
    let init = loop {
        let supervisor =
            ProcRef::read(&files.supervisor_pid()).ok_or_else(|| died("no boot helper"))?;
        if !supervisor.alive() {
            return Err(died("the host stopped while booting"));
        }
        let init = match host.mode {
            Mode::Plain => ProcRef::read(&files.init_pid()),
            Mode::Systemd => find_container_init(&files, supervisor)?,
        };
        if let Some(init) = init {
            let ready_file = match host.mode {
                Mode::Plain => Path::new("/proc")
                    .join(init.pid.to_string())
                    .join("root")
                    .join(PLAIN_READY_FILE)
                    .exists(),
                Mode::Systemd => true,
            };
            if ready_file && sshd_answers(names, host, ssh_addr) {
                break init;
            }
        }
        if Instant::now() > deadline {
            return Err(died("not ready in time (sshd not reachable)"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if host.mode == Mode::Systemd {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let out = nsenter_output(
            init,
            &["systemctl", "is-system-running", "--wait"],
            remaining,
        )?;
        let state = out.trim();
        if state != "running" {
            let failed = nsenter_output(
                init,
                &["systemctl", "--failed", "--plain", "--no-legend"],
                Duration::from_secs(20),
            )
            .unwrap_or_default();
            if state == "degraded" {
                eprintln!(
                    "warning: {} booted degraded; failed units:\n{}",
                    host.name,
                    failed.trim()
                );
            } else {
                return Err(died(&format!("system state is {state:?}")));
            }
        }
    }
    Ok(())
}

/// A host on the lab's bridge is probed from the machine, as a controller reaches it; one on
/// an internal network (the machine cannot reach it) from inside its own namespace.
fn sshd_answers(names: &Names, host: &HostState, addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(200);
    if host.network == 0 {
        TcpStream::connect_timeout(&addr, timeout).is_ok()
    } else {
        super::internal::connects_from(&names.netns_path(&host.name), addr, timeout)
    }
}

/// In systemd mode the host's PID 1 is the child of systemd-nspawn that lives in another
/// PID namespace (nspawn's short-lived intermediate child does not).
fn find_container_init(files: &HostFiles, nspawn: ProcRef) -> Result<Option<ProcRef>> {
    if let Some(known) = ProcRef::read(&files.init_pid()) {
        if known.alive() {
            return Ok(Some(known));
        }
    }
    let own_ns = fs::read_link(format!("/proc/{}/ns/pid", nspawn.pid)).ok();
    let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", nspawn.pid)) else {
        return Ok(None);
    };
    for task in tasks.flatten() {
        let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let ns = fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
            if ns.is_some() && ns != own_ns {
                if let Some(init) = ProcRef::of(pid) {
                    init.write(&files.init_pid())?;
                    return Ok(Some(init));
                }
            }
        }
    }
    Ok(None)
}

/// The command line that runs `args` inside all of a host's namespaces, as root.
pub fn nsenter_command(init: ProcRef, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t")
        .arg(init.pid.to_string())
        .args(["-m", "-u", "-i", "-n", "-p", "-r", "-w", "--"])
        .args(args)
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("LANG", "C.UTF-8");
    cmd
}

/// Runs a command in a host and returns its stdout, killing it if it outlasts `timeout`.
fn nsenter_output(init: ProcRef, args: &[&str], timeout: Duration) -> Result<String> {
    let mut child = nsenter_command(init, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run nsenter")?;
    let finished = sys::poll_until(timeout, Duration::from_millis(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "`{}` in the host took longer than {timeout:?}",
            args.join(" ")
        );
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    Ok(out)
}

/// The arguments of the hidden `lab boot-host` command.
pub struct BootArgs<'a> {
    pub names: &'a Names,
    pub host: &'a str,
    pub mode: Mode,
    pub lower: &'a Path,
}

/// Body of the boot helper (a fresh single-threaded process): joins the host's cgroups, mounts
/// its overlay root in a private mount namespace (so the mount dies with the host), then
/// becomes systemd-nspawn, or forks the host's PID 1 in new namespaces and waits for it.
pub fn boot_host_main(args: &BootArgs) -> Result<()> {
    let files = HostFiles::new(args.names, args.host);
    join_cgroups(args.names, args.host)?;
    unshare(libc::CLONE_NEWNS)?;
    sys::make_mounts_private()?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        args.lower.display(),
        files.upper().display(),
        files.work().display()
    );
    sys::mount("overlay", &files.root(), "overlay", 0, &options)?;
    match args.mode {
        Mode::Systemd => exec_nspawn(args, &files),
        Mode::Plain => run_plain(args, &files),
    }
}

/// Each host gets its own cgroup in the named systemd hierarchy and the unified one; without
/// its own, nspawn's systemd and its neighbours' fight over the same subtree at shutdown.
fn join_cgroups(names: &Names, host: &str) -> Result<()> {
    let pid = std::process::id().to_string();
    // Hybrid machines (name=systemd v1 plus unified v2), or a pure v2 one.
    let candidates = [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ];
    let mut roots: Vec<&Path> = candidates[..2]
        .iter()
        .map(Path::new)
        .filter(|r| r.join("cgroup.procs").exists())
        .collect();
    if roots.is_empty() && Path::new(candidates[2]).join("cgroup.procs").exists() {
        roots.push(Path::new(candidates[2]));
    }
    for root in roots {
        let dir = root.join(names.cgroup()).join(host);
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create cgroup {}", dir.display()))?;
        fs::write(dir.join("cgroup.procs"), &pid)
            .with_context(|| format!("cannot join cgroup {}", dir.display()))?;
    }
    Ok(())
}

fn exec_nspawn(args: &BootArgs, files: &HostFiles) -> Result<()> {
    // nspawn keeps locks and propagation dirs under /run/systemd; a private tmpfs there keeps
    // them from piling up on the machine.
    let run_systemd = Path::new("/run/systemd");
    fs::create_dir_all(run_systemd)?;
    sys::mount("tmpfs", run_systemd, "tmpfs", 0, "mode=755")?;
    let err = Command::new("systemd-nspawn")
        .args(["-q", "-b", "-D"])
        .arg(files.root())
        .args(["-M", args.host])
        // No D-Bus or machined here (PID 1 of the machine is not systemd).
        .args(["--register=no", "--keep-unit"])
        .arg(format!(
            "--network-namespace-path={}",
            args.names.netns_path(args.host).display()
        ))
        .args([
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--console=read-only",
        ])
        .env_clear()
        .env("PATH", HOST_PATH)
        .exec();
    Err(anyhow!("cannot start systemd-nspawn: {err}"))
}

fn run_plain(args: &BootArgs, files: &HostFiles) -> Result<()> {
    let netns_path = args.names.netns_path(args.host);
    let netns =
        File::open(&netns_path).with_context(|| format!("cannot open {}", netns_path.display()))?;
    use std::os::unix::io::AsRawFd;
    // SAFETY: setns takes a file descriptor we own and open for the whole call; it changes only this thread's namespace.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot enter {}: {}",
            netns_path.display(),
            std::io::Error::last_os_error()
        );
    }
    drop(netns);
    unshare(libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC)?;
    std::io::stdout().flush()?;
    // SAFETY: the boot helper is single-threaded here (no runtime, no other threads yet), so the child may run ordinary code until it execs tini.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let err = become_plain_init(&files.root(), args.host);
            eprintln!("{}: cannot start its init: {err:#}", args.host);
            // SAFETY: _exit ends the forked child at once, without running the parent's destructors twice.
            unsafe { libc::_exit(1) }
        }
        child => {
            if let Some(init) = ProcRef::of(child) {
                init.write(&files.init_pid())?;
            }
            let mut status = 0;
            // SAFETY: `status` is a live local the call writes to.
            while unsafe { libc::waitpid(child, &mut status, 0) } == -1 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// Runs as PID 1 of the host's new PID namespace: builds /proc /sys /dev /run on the overlay
/// root, pivots into it and execs tini with the plain init.
fn become_plain_init(root: &Path, host: &str) -> anyhow::Error {
    match plain_init_steps(root, host) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn plain_init_steps(root: &Path, host: &str) -> Result<std::convert::Infallible> {
    // pivot_root moves the root of every process in the mount namespace: a namespace of our
    // own keeps the waiting parent where it is.
    unshare(libc::CLONE_NEWNS)?;
    sys::make_mounts_private()?;
    // SAFETY: the pointer and length are those of a live &str.
    if unsafe { libc::sethostname(host.as_ptr().cast(), host.len()) } != 0 {
        bail!("sethostname: {}", std::io::Error::last_os_error());
    }
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    sys::mount(
        "proc",
        &root.join("proc"),
        "proc",
        nosuid_nodev | libc::MS_NOEXEC,
        "",
    )?;
    sys::mount(
        "sysfs",
        &root.join("sys"),
        "sysfs",
        nosuid_nodev | libc::MS_NOEXEC | libc::MS_RDONLY,
        "",
    )?;
    let dev = root.join("dev");
    sys::mount(
        "tmpfs",
        &dev,
        "tmpfs",
        libc::MS_NOSUID,
        "mode=755,size=65536k",
    )?;
    for (name, minor_major) in [
        ("null", (1, 3)),
        ("zero", (1, 5)),
        ("full", (1, 7)),
        ("random", (1, 8)),
        ("urandom", (1, 9)),
        ("tty", (5, 0)),
    ] {
        let path = sys::cstr(dev.join(name).as_os_str())?;
        let devno = libc::makedev(minor_major.0, minor_major.1);
        // SAFETY: `path` is a live NUL-terminated CString.
        if unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, devno) } != 0 {
            bail!("mknod /dev/{name}: {}", std::io::Error::last_os_error());
        }
        fs::set_permissions(dev.join(name), fs::Permissions::from_mode(0o666))?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))?;
    }
    fs::create_dir(dev.join("pts"))?;
    fs::create_dir(dev.join("shm"))?;
    sys::mount(
        "devpts",
        &dev.join("pts"),
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=620,gid=5",
    )?;
    sys::mount(
        "tmpfs",
        &dev.join("shm"),
        "tmpfs",
        nosuid_nodev,
        "mode=1777",
    )?;
    sys::mount(
        "tmpfs",
        &root.join("run"),
        "tmpfs",
        nosuid_nodev,
        "mode=755,size=65536k",
    )?;

    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    // only the host's tree visible.
    std::env::set_current_dir(root)?;
    let dot = CString::new(".")?;
    // SAFETY: both arguments are the same live NUL-terminated CString.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        bail!("pivot_root: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `dot` is a live NUL-terminated CString.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        bail!(
            "detaching the old root: {}",
            std::io::Error::last_os_error()
        );
    }
    std::env::set_current_dir("/")?;
    // SAFETY: umask takes no pointers and cannot fail.
    unsafe { libc::umask(0o022) };
    let err = Command::new("/usr/bin/tini")
        .args(["-s", "--", &format!("/{PLAIN_INIT_PATH}")])
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .exec();
    Err(anyhow!("cannot exec tini: {err}"))
}

fn unshare(flags: libc::c_int) -> Result<()> {
    // SAFETY: unshare takes no pointers; the result is checked.
    if unsafe { libc::unshare(flags) } != 0 {
        bail!("unshare: {}", std::io::Error::last_os_error());
    }
    Ok(())
}
