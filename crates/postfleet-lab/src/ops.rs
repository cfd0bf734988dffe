//! The lab's lifecycle: up, add, reset, down, rtt, and the background sink.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::host::{self, PrepareContext};
use super::net::{self, Subnet};
use super::state::{self, labs_dir, HostState, LabState, Mode, Names, Release, Role};
use super::sys::{self, ProcRef};
use super::{base, cleanup, delay, internal};

pub struct UpOptions {
    pub hosts: u32,
    pub mode: Mode,
    pub release: Release,
    pub subnet: Option<String>,
    pub rtt_ms: u32,
    /// Bastions one behind the other in front of the mail hosts (0: none, hosts on the
    /// lab's bridge).
    pub bastion_hops: u32,
    /// Subnets of the internal networks, one per hop (default 10.(200+k).X.0/24).
    pub internal_subnets: Vec<String>,
    /// Host and user certificates (see [`super::ssh_ca`]).
    pub ssh_ca: bool,
}

/// The internal networks' subnets: as given, else as last time, else the defaults; each
/// distinct from the others and from the lab's own.
fn internal_subnets(
    names: &Names,
    opts: &UpOptions,
    subnet: &Subnet,
    previous: Option<&LabState>,
) -> Result<Vec<Subnet>> {
    let hops = opts.bastion_hops;
    if hops > state::MAX_HOPS {
        crate::error::bad_input!("--bastion takes 1 to {} hops", state::MAX_HOPS);
    }
    if !opts.internal_subnets.is_empty() && opts.internal_subnets.len() != hops as usize {
        crate::error::bad_input!(
            "give --internal-subnet once per bastion hop ({hops}), not {} times",
            opts.internal_subnets.len()
        );
    }
    let subnets: Vec<Subnet> = if !opts.internal_subnets.is_empty() {
        opts.internal_subnets
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_>>()?
    } else {
        match previous.filter(|p| p.internal.len() == hops as usize) {
            Some(p) => p.internal.clone(),
            None => (1..=hops)
                .map(|k| Subnet::default_internal(&names.lab, k))
                .collect(),
        }
    };
    let all: Vec<&Subnet> = std::iter::once(subnet).chain(&subnets).collect();
    for (i, a) in all.iter().enumerate() {
        if let Some(b) = all[i + 1..].iter().find(|b| a.overlaps(b)) {
            crate::error::bad_input!("subnets {a} and {b} of the lab overlap");
        }
    }
    Ok(subnets)
}

/// Bastion k sits on network k-1 at .2 (the lab's bridge has the gateway at .1) and on
/// network k at .1.
fn bastion_hosts(
    subnet: &Subnet,
    internal: &[Subnet],
    release: Release,
    base: &std::path::Path,
) -> Vec<HostState> {
    (1..=internal.len() as u32)
        .map(|k| {
            let outer = if k == 1 {
                *subnet
            } else {
                internal[k as usize - 2]
            };
            HostState {
                name: state::bastion_name(k),
                index: 0,
                address: outer.reserved_address(2),
                // The lighter boot: a bastion only needs sshd.
                mode: Mode::Plain,
                release,
                base: base.to_path_buf(),
                rtt_ms: 0,
                role: Role::Bastion,
                network: k - 1,
                inner_address: Some(internal[k as usize - 1].reserved_address(1)),
            }
        })
        .collect()
}

fn check_tools(modes: &[Mode]) -> Result<()> {
    sys::require_tool("ip", "iproute2")?;
    sys::require_tool("ssh-keygen", "openssh-client")?;
    sys::require_tool("nsenter", "util-linux")?;
    if modes.contains(&Mode::Systemd) {
        sys::require_tool("systemd-nspawn", "systemd-container")?;
    }
    Ok(())
}

fn lab_flag(names: &Names) -> String {
    format!("postfleet lab --lab {}", names.lab)
}

/// Refuses to start over a running lab, or over the leftovers of a killed one.
fn refuse_if_present(names: &Names) -> Result<()> {
    let live = cleanup::live_processes(names);
    if !live.is_empty() {
        crate::error::bad_input!(
            "lab '{}' is already up (running: {}); run `{} down` first",
            names.lab,
            live.join(" "),
            lab_flag(names)
        );
    }
    let left = cleanup::leftovers(names);
    if !left.is_empty() {
        crate::error::bad_input!(
            "lab '{}' has leftovers of an earlier run ({}); run `{} down` to remove them",
            names.lab,
            left.join(", "),
            lab_flag(names)
        );
    }
    Ok(())
}

fn require_up(names: &Names) -> Result<LabState> {
    let state = LabState::load(names)?.ok_or_else(|| {
        crate::error::bad_input_error!(
            "lab '{}' does not exist; run `{} up` first",
            names.lab,
            lab_flag(names)
        )
    })?;
    if !net::link_exists(&names.bridge()) {
        crate::error::bad_input!(
            "lab '{}' is not up; run `{} up` first",
            names.lab,
            lab_flag(names)
        );
    }
    Ok(state)
}

pub fn up(names: &Names, opts: UpOptions) -> Result<()> {
    sys::require_root()?;
    check_tools(&[opts.mode])?;
    if opts.hosts == 0 {
        crate::error::bad_input!("--hosts must be at least 1");
    }
    let _lock = sys::lock_file(&names.lock_path())?;
    refuse_if_present(names)?;
    let previous = LabState::load(names)?;
    let subnet: Subnet = match (&opts.subnet, &previous) {
        (Some(s), _) => s.parse()?,
        (None, Some(p)) => p.subnet,
        (None, None) => Subnet::default_for(&names.lab),
    };
    let internal = internal_subnets(names, &opts, &subnet, previous.as_ref())?;
    let mail_subnet = internal.last().copied().unwrap_or(subnet);
    mail_subnet.host_address(opts.hosts)?;
    for s in std::iter::once(&subnet).chain(&internal) {
        net::check_subnet_is_free(names, s)?;
    }

    // The base first: an interrupted first build leaves nothing of the lab behind.
    let started = Instant::now();
    let (base, built) = base::ensure_base(opts.release)?;
    let base_time = started.elapsed();
    let mut hosts = bastion_hosts(&subnet, &internal, opts.release, &base);
    for i in 1..=opts.hosts {
        hosts.push(HostState {
            name: format!("h{i}"),
            index: i,
            address: mail_subnet.host_address(i)?,
            mode: opts.mode,
            release: opts.release,
            base: base.clone(),
            rtt_ms: opts.rtt_ms,
            role: Role::Mail,
            network: internal.len() as u32,
            inner_address: None,
        });
    }
    forget_unwanted_hosts(names, previous.as_ref(), &hosts)?;
    let state = LabState {
        name: names.lab.clone(),
        subnet,
        gateway: subnet.gateway(),
        rtt_ms: opts.rtt_ms,
        hosts,
        internal,
    };
    {
        // Two labs starting at once must not both find the same subnet free.
        let _network = sys::lock_file(&labs_dir().join(".network.lock"))?;
        for s in std::iter::once(&subnet).chain(&state.internal) {
            net::check_subnet_is_free(names, s)?;
        }
        state.save(names)?;
        net::ensure_bridge(names, &subnet)?;
        internal::ensure_networks(names, &state)?;
    }

    let result = ensure_lab_key(names)
        .and_then(|()| super::ssh_ca::configure(names, opts.ssh_ca))
        .and_then(|()| start_lab(names, &state));
    let timings = match result {
        Ok(r) => r,
        Err(e) => {
            if let Err(cleanup_error) = cleanup::down(names) {
                eprintln!("warning: cleaning up after the failed start: {cleanup_error:#}");
            }
            return Err(e);
        }
    };
    let base_note = if built { "built" } else { "cached" };
    println!(
        "base {:.2}s ({base_note}: {}), prepare {:.2}s, boot-to-ready {:.2}s, total {:.2}s",
        base_time.as_secs_f64(),
        base.display(),
        timings.prepare.as_secs_f64(),
        timings.boot.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    print_summary(names, &state);
    Ok(())
}

/// Host dirs kept by a plain `down` are reused by `up`, unless the host is no longer wanted
/// or its upper layer was made over another base tree (another release or recipe).
fn forget_unwanted_hosts(
    names: &Names,
    previous: Option<&LabState>,
    wanted: &[HostState],
) -> Result<()> {
    let hosts_dir = names.state_dir.join("hosts");
    let Ok(entries) = fs::read_dir(&hosts_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let old_base = previous.and_then(|p| p.host(&name)).map(|h| &h.base);
        let keep = wanted
            .iter()
            .any(|h| h.name == name && Some(&h.base) == old_base);
        if !keep {
            sys::remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

struct Timings {
    prepare: Duration,
    boot: Duration,
}

fn start_lab(names: &Names, state: &LabState) -> Result<Timings> {
    ensure_lab_key(names)?;
    start_sink(names)?;
    start_hosts(names, state, &state.hosts)
}

/// Prepares, boots and waits for `hosts` (members of `state`), then applies their delay.
fn start_hosts(names: &Names, state: &LabState, hosts: &[HostState]) -> Result<Timings> {
    if hosts.iter().any(|h| h.mode == Mode::Systemd) {
        cleanup::raise_inotify_limit()?;
    }
    let prepare_started = Instant::now();
    let public_key = fs::read_to_string(names.key_path().with_extension("pub"))
        .context("cannot read the lab's public key")?;
    internal::ensure_networks(names, state)?;
    let subnets: Vec<Subnet> = std::iter::once(state.subnet)
        .chain(state.internal.iter().copied())
        .collect();
    let ctx = PrepareContext {
        names,
        lab_public_key: &public_key,
        gateway: state.gateway,
        subnets: &subnets,
    };
    all_ok(parallel(hosts, 8, |h| host::prepare(&ctx, h).map(|_| ())))?;
    write_known_hosts(names, state)?;
    let prepare = prepare_started.elapsed();

    let boot_started = Instant::now();
    for h in hosts {
        host::spawn_boot(names, h)?;
    }
    all_ok(parallel(hosts, hosts.len(), |h| host::wait_ready(names, h)))?;
    let delayed: Vec<&HostState> = hosts.iter().filter(|h| h.rtt_ms > 0).collect();
    all_ok(parallel(&delayed, 8, |h| {
        delay::set_rtt(names, &h.name, h.rtt_ms)
    }))?;
    Ok(Timings {
        prepare,
        boot: boot_started.elapsed(),
    })
}

/// Runs `work` on every item with up to `workers` threads; results in item order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                results.lock().expect("no panics while holding the lock")[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .expect("no panics while holding the lock")
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow!("not run"))))
        .collect()
}

/// One error naming every failure, or Ok.
fn all_ok<R>(results: Vec<Result<R>>) -> Result<()> {
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

/// The lab's own ed25519 client key, made once per lab (kept until `down --purge`).
fn ensure_lab_key(names: &Names) -> Result<()> {
    let key = names.key_path();
    if key.exists() && key.with_extension("pub").exists() {
        return Ok(());
    }
    let dir = key.parent().expect("key path has a parent");
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let _ = fs::remove_file(&key);
    let _ = fs::remove_file(key.with_extension("pub"));
    sys::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("postfleet-lab-{}", names.lab))
            .arg("-f")
            .arg(&key),
    )?;
    Ok(())
}

/// known_hosts for every host of the lab, from the host keys made at prepare time, and the
/// OpenSSH client configuration that uses it (`lab ssh` goes through bastions with it).
fn write_known_hosts(names: &Names, state: &LabState) -> Result<()> {
    let mut lines = Vec::new();
    if let Some(ca_lines) = super::ssh_ca::known_hosts_lines(names, state)? {
        lines = ca_lines;
    } else {
        for h in &state.hosts {
            lines.extend(host::known_hosts_lines(names, h)?);
        }
    }
    let text = lines.join("\n") + "\n";
    sys::write_atomic(&names.known_hosts_path(), text.as_bytes(), 0o644)?;
    let config = super::client::ssh_config(names, state, "root");
    sys::write_atomic(&names.ssh_config_path(), config.as_bytes(), 0o644)
}

/// Restarts the sink if it died.
fn ensure_sink(names: &Names) -> Result<()> {
    if ProcRef::read(&names.sink_pid_path()).is_some_and(|p| p.alive()) {
        return Ok(());
    }
    start_sink(names)
}

/// Starts `postfleet lab sink` in the background and waits until it listens.
fn start_sink(names: &Names) -> Result<()> {
    cleanup::stop_sink(names);
    let log_path = names.state_dir.join("sink.log");
    let log = File::create(&log_path)?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("postfleet")
        .args(["lab", "--lab", &names.lab, "sink"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the sink")?;
    let listening = sys::poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        ProcRef::read(&names.sink_pid_path()).is_some_and(|p| p.alive())
            || matches!(child.try_wait(), Ok(Some(_)))
    });
    if !listening || !ProcRef::read(&names.sink_pid_path()).is_some_and(|p| p.alive()) {
        bail!("the sink did not start: {}", sys::tail(&log_path, 5));
    }
    Ok(())
}

/// "1 host", "3 hosts".
fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

fn print_summary(names: &Names, state: &LabState) {
    let mail = state.hosts.iter().filter(|h| h.role == Role::Mail).count();
    let mail_subnet = state
        .network_subnet(state.mail_network())
        .expect("the mail network is recorded");
    // Behind bastions: "2 hosts on 10.201.X.0/24 behind bastion 10.77.X.2 (on 10.77.X.0/24)".
    let bastions: Vec<String> = state
        .jump_chain(state.mail_network())
        .iter()
        .map(|b| format!("{} {}", b.name, b.address))
        .collect();
    let place = if bastions.is_empty() {
        format!("on {}", state.subnet)
    } else {
        format!(
            "on {mail_subnet} behind {} (on {})",
            bastions.join(" then "),
            state.subnet
        )
    };
    println!(
        "lab '{}' up: {} {place}, sink on {} ports {}-{}",
        names.lab,
        count(mail, "host"),
        state.gateway,
        super::state::SINK_PORTS[0],
        super::state::SINK_PORTS[super::state::SINK_PORTS.len() - 1]
    );
}

/// Adds `count` mail hosts: behind the last bastion if the lab has bastions, unless `direct`
/// (then on the lab's bridge, reachable from this machine: a fleet with both kinds).
pub fn add(names: &Names, count: u32, mode: Mode, release: Release, direct: bool) -> Result<()> {
    sys::require_root()?;
    check_tools(&[mode])?;
    if count == 0 {
        crate::error::bad_input!("--count must be at least 1");
    }
    let _lock = sys::lock_file(&names.lock_path())?;
    let mut state = require_up(names)?;
    ensure_sink(names)?;
    let (base, _) = base::ensure_base(release)?;
    let first = state.next_index();
    let network = if direct { 0 } else { state.mail_network() };
    let subnet = state
        .network_subnet(network)
        .expect("the mail network is recorded");
    let new_hosts = (first..first + count)
        .map(|i| {
            Ok(HostState {
                name: format!("h{i}"),
                index: i,
                address: subnet.host_address(i)?,
                mode,
                release,
                base: base.clone(),
                rtt_ms: state.rtt_ms,
                role: Role::Mail,
                network,
                inner_address: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for h in &new_hosts {
        sys::remove_tree(&names.host_dir(&h.name))?;
    }
    state.hosts.extend(new_hosts.iter().cloned());
    state.save(names)?;
    let started = Instant::now();
    match start_hosts(names, &state, &new_hosts) {
        Ok(t) => {
            println!(
                "prepare {:.2}s, boot-to-ready {:.2}s, total {:.2}s",
                t.prepare.as_secs_f64(),
                t.boot.as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
            for h in &new_hosts {
                println!(
                    "{} {} {} {} up",
                    h.name,
                    h.address,
                    h.mode.as_str(),
                    h.release.suite()
                );
            }
            Ok(())
        }
        Err(e) => {
            let added: Vec<String> = new_hosts.iter().map(|h| h.name.clone()).collect();
            if let Err(cleanup_error) = cleanup::stop_hosts(names, &added, false) {
                eprintln!("warning: cleaning up after the failed add: {cleanup_error:#}");
            }
            state.hosts.retain(|h| !added.contains(&h.name));
            state.save(names)?;
            write_known_hosts(names, &state)?;
            Err(e)
        }
    }
}

pub fn reset(names: &Names, host_names: &[String]) -> Result<()> {
    sys::require_root()?;
    let _lock = sys::lock_file(&names.lock_path())?;
    let mut state = require_up(names)?;
    for name in host_names {
        if state.host(name).is_none() {
            crate::error::bad_input!("lab '{}' has no host {name}", names.lab);
        }
    }
    ensure_sink(names)?;
    let started = Instant::now();
    let lab_rtt = state.rtt_ms;
    for h in state
        .hosts
        .iter_mut()
        .filter(|h| host_names.contains(&h.name))
    {
        h.rtt_ms = if h.role == Role::Bastion { 0 } else { lab_rtt };
        // Its upper layer is wiped: it boots over the current base of its release.
        h.base = base::ensure_base(h.release)?.0;
    }
    let hosts: Vec<HostState> = state
        .hosts
        .iter()
        .filter(|h| host_names.contains(&h.name))
        .cloned()
        .collect();
    check_tools(&hosts.iter().map(|h| h.mode).collect::<Vec<_>>())?;
    // The host's state is wiped anyway: no orderly shutdown.
    cleanup::stop_hosts(names, host_names, false)?;
    for h in &hosts {
        let files = super::state::HostFiles::new(names, &h.name);
        sys::remove_tree(&files.upper())?;
        sys::remove_tree(&files.work())?;
    }
    state.save(names)?;
    let t = start_hosts(names, &state, &hosts)?;
    println!(
        "reset {}: stop {:.2}s, prepare {:.2}s, boot-to-ready {:.2}s, total {:.2}s",
        host_names.join(" "),
        (started.elapsed() - t.prepare - t.boot).as_secs_f64(),
        t.prepare.as_secs_f64(),
        t.boot.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn down(names: &Names, purge: bool) -> Result<()> {
    sys::require_root()?;
    sys::require_tool("ip", "iproute2")?;
    let lock = sys::lock_file(&names.lock_path())?;
    let started = Instant::now();
    let report = cleanup::down(names)?;
    if purge {
        sys::remove_tree(&names.state_dir)?;
        let _ = fs::remove_file(names.lock_path());
    }
    drop(lock);
    let mut line = format!(
        "lab '{}' down: {} stopped, namespaces, interfaces and cgroups removed",
        names.lab,
        count(report.hosts, "host")
    );
    if purge {
        line.push_str(&format!(", {} deleted", names.state_dir.display()));
    }
    if let Some(value) = report.restored_inotify {
        line.push_str(&format!(", fs.inotify.max_user_instances back to {value}"));
    }
    println!("{line} ({:.2}s)", started.elapsed().as_secs_f64());
    Ok(())
}

pub fn rtt(names: &Names, rtt_ms: u32, host_names: &[String]) -> Result<()> {
    sys::require_root()?;
    let _lock = sys::lock_file(&names.lock_path())?;
    let mut state = require_up(names)?;
    let targets: Vec<String> = if host_names.is_empty() {
        state
            .hosts
            .iter()
            .filter(|h| h.role == Role::Mail)
            .map(|h| h.name.clone())
            .collect()
    } else {
        host_names.to_vec()
    };
    for name in &targets {
        if state.host(name).is_none() {
            crate::error::bad_input!("lab '{}' has no host {name}", names.lab);
        }
    }
    all_ok(parallel(&targets, 8, |h| delay::set_rtt(names, h, rtt_ms)))?;
    for h in state.hosts.iter_mut().filter(|h| targets.contains(&h.name)) {
        h.rtt_ms = rtt_ms;
    }
    state.save(names)?;
    if rtt_ms == 0 {
        println!("added delay removed on {}", targets.join(" "));
    } else {
        println!("{} ms round trip added on {}", rtt_ms, targets.join(" "));
    }
    Ok(())
}

/// `lab sink`: serves in the foreground (also what `up` starts in the background).
pub fn sink(names: &Names) -> Result<()> {
    sys::require_root()?;
    let state = require_up(names)?;
    if let Some(running) = ProcRef::read(&names.sink_pid_path()).filter(|p| p.alive()) {
        if running.pid != std::process::id() as i32 {
            crate::error::bad_input!(
                "the sink of lab '{}' already runs (pid {}); `{} down` stops it",
                names.lab,
                running.pid,
                lab_flag(names)
            );
        }
    }
    let result = super::sink::serve(
        &names.state_dir,
        state.gateway,
        &super::state::SINK_PORTS,
        &names.sink_pid_path(),
    );
    let _ = fs::remove_file(names.sink_pid_path());
    result
}
