//! `postfleet lab`: the command line of the lab (`postfleet_lab` does the work).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use postfleet_core::exit::Exit;
use postfleet_lab::commands::{self as lab, Names};
use postfleet_lab::{Lab, LabError, Mode, Release};

/// How a host boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabMode {
    /// systemd as PID 1 (systemd-nspawn): systemctl and journald work, like a real server.
    Systemd,
    /// A small init under tini starting sshd and Postfix the sysvinit way: lighter, no systemctl.
    Plain,
}

impl From<LabMode> for Mode {
    fn from(m: LabMode) -> Mode {
        match m {
            LabMode::Systemd => Mode::Systemd,
            LabMode::Plain => Mode::Plain,
        }
    }
}

/// The Debian release of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabRelease {
    /// Debian 12 (oldstable), Postfix 3.7.
    Bookworm,
    /// Debian 13 (stable), Postfix 3.10.
    Trixie,
}

impl From<LabRelease> for Release {
    fn from(r: LabRelease) -> Release {
        match r {
            LabRelease::Bookworm => Release::Bookworm,
            LabRelease::Trixie => Release::Trixie,
        }
    }
}

/// `postfleet lab [--lab NAME] <command>`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Which lab: state in /var/lib/postfleet/labs/NAME (env POSTFLEET_LAB_DIR overrides the
    /// parent), kernel objects named pfNAME-*. 1 to 6 characters a-z 0-9.
    #[arg(
        long,
        global = true,
        env = "POSTFLEET_LAB",
        default_value = "lab",
        value_name = "NAME"
    )]
    pub lab: String,
    #[command(subcommand)]
    pub command: LabCommand,
}

/// Subcommands of `postfleet lab`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Boot hosts h1..hN (builds the base tree on first use).
    Up {
        /// Number of hosts.
        #[arg(long)]
        hosts: u32,
        /// How hosts boot: systemd (systemd-nspawn) or plain (sshd and Postfix under tini).
        #[arg(long, value_enum, default_value_t = LabMode::Systemd)]
        mode: LabMode,
        /// Debian release of the hosts: trixie (13, stable) or bookworm (12, oldstable). One
        /// base tree per release is built on first use and cached.
        #[arg(long, value_enum, default_value_t = LabRelease::Trixie)]
        release: LabRelease,
        /// IPv4 subnet of the lab (default 10.77.0.0/24 for `lab`, another 10.77.X.0/24 per name).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// Added round-trip time for every host, in ms.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        rtt_ms: u32,
        /// Put the hosts behind bastions: `--bastion` is one hop, `--bastion 2` two. Host
        /// `bastion` (sshd with TCP forwarding, no Postfix) is on the lab's subnet at .2 and
        /// at .1 on internal network 1; with two hops `bastion2` is at .2 on network 1 and at
        /// .1 on network 2, and so on. The hosts are on the last internal network, which
        /// this machine cannot reach (no interface, address or route to it; an `unreachable`
        /// route makes a connect fail at once), only through the bastions in order. The one
        /// way out of it is to the sink (bastions forward to its ports only).
        #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "HOPS")]
        bastion: Option<u32>,
        /// Subnet of an internal network, once per hop in hop order (default
        /// 10.(200+K).X.0/24 for network K, X as in the lab's default subnet).
        #[arg(long, value_name = "CIDR", requires = "bastion")]
        internal_subnet: Vec<String>,
        /// OpenSSH certificates: a lab host CA signs the host keys, sshd trusts a lab user CA
        /// that signed the lab key (`lab_ed25519-cert.pub`), known_hosts is `@cert-authority`.
        #[arg(long)]
        ssh_ca: bool,
    },
    /// Add hosts to a running lab.
    Add {
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, value_enum, default_value_t = LabMode::Systemd)]
        mode: LabMode,
        /// Debian release of the new hosts (a lab may mix releases).
        #[arg(long, value_enum, default_value_t = LabRelease::Trixie)]
        release: LabRelease,
        /// In a lab with bastions: put the new hosts on the lab's own subnet, reachable from
        /// this machine without a jump (by default they join the others behind the bastions).
        #[arg(long)]
        direct: bool,
    },
    /// Boot hosts afresh: their changes are wiped, they get new keys and machine-id.
    Reset {
        #[arg(required = true, value_name = "HOST")]
        hosts: Vec<String>,
    },
    /// Show the lab's hosts, addresses, modes and whether they run.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print an inventory of the lab in postfleet's format (hosts behind bastions get
    /// `ssh_proxy_jump: "root@BASTION:22[,root@BASTION2:22]"`, first hop first).
    Inventory {
        /// Connect as this user (not root: with `become: true`).
        #[arg(long, default_value = "root")]
        user: String,
        /// Also write an OpenSSH client config describing the lab to FILE: a `Host` block per
        /// host (h1.., bastion..) with HostName, User (--user; root on bastions), the lab's key
        /// and known_hosts,
        /// StrictHostKeyChecking yes and ProxyJump through the bastions, so
        /// `ssh -F FILE h1` works.
        #[arg(long, value_name = "FILE")]
        ssh_config: Option<PathBuf>,
    },
    /// ssh to a host; words after the host (or after `--`) are run by its shell.
    Ssh {
        host: String,
        #[arg(short = 'l', long, default_value = "root")]
        user: String,
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Stop every host and remove the lab's namespaces, interfaces, cgroups and processes.
    Down {
        /// Also delete the lab's state (hosts' disks, keys, sink messages).
        #[arg(long)]
        purge: bool,
    },
    /// Set the added round-trip time of hosts (all if none named); 0 removes it.
    Rtt {
        #[arg(long, value_name = "MS")]
        ms: u32,
        #[arg(value_name = "HOST")]
        hosts: Vec<String>,
    },
    /// Run the lab's mail sink in the foreground (`up` starts one in the background).
    Sink,
    /// Submit a message over SMTP to a host's port 25, from inside it, as an application does.
    Send {
        host: String,
        #[arg(long, value_name = "ADDRESS")]
        from: String,
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        #[arg(long, default_value = "postfleet lab test message")]
        subject: String,
    },
    /// Show what the sink received: port (the route), envelope, HELO name (the instance).
    Mails {
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Internal: a host's boot helper.
    #[command(hide = true)]
    BootHost {
        host: String,
        #[arg(long, value_enum)]
        mode: LabMode,
        #[arg(long)]
        lower: PathBuf,
    },
    /// Internal: the packet delayer of a host.
    #[command(hide = true)]
    Delayer {
        host: String,
        #[arg(long)]
        delay_us: u64,
    },
}

/// Runs a lab command; errors are one line and exit with the code the README gives.
pub fn run(args: LabArgs) -> Exit {
    match dispatch(args) {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("error: {e:#}");
            LabError::exit_of(&e)
        }
    }
}

fn dispatch(args: LabArgs) -> anyhow::Result<()> {
    let names = Names::new(&args.lab)?;
    match args.command {
        LabCommand::Up {
            hosts,
            mode,
            release,
            subnet,
            rtt_ms,
            bastion,
            internal_subnet,
            ssh_ca,
        } => lab::up(
            &names,
            lab::UpOptions {
                hosts,
                mode: mode.into(),
                release: release.into(),
                subnet,
                rtt_ms,
                bastion_hops: match bastion {
                    Some(0) => anyhow::bail!(postfleet_lab::LabError::BadInput(
                        "--bastion takes 1 or more hops".into()
                    )),
                    hops => hops.unwrap_or(0),
                },
                internal_subnets: internal_subnet,
                ssh_ca,
            },
        )?,
        LabCommand::Add {
            count,
            mode,
            release,
            direct,
        } => lab::add(&names, count, mode.into(), release.into(), direct)?,
        LabCommand::Reset { hosts } => lab::reset(&names, &hosts)?,
        LabCommand::Status { json } => lab::status(&names, json)?,
        LabCommand::Inventory { user, ssh_config } => {
            let lab = Lab::open(&args.lab)?;
            if let Some(path) = ssh_config {
                std::fs::write(&path, lab.ssh_config(&user))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            print!("{}", lab.inventory_yaml(&user));
        }
        LabCommand::Ssh {
            host,
            user,
            command,
        } => {
            let mut ssh = Lab::open(&args.lab)?.ssh_command(&host, &user)?;
            let err = ssh.args(&command).exec();
            anyhow::bail!("cannot run ssh: {err}");
        }
        LabCommand::Down { purge } => lab::down(&names, purge)?,
        LabCommand::Rtt { ms, hosts } => lab::rtt(&names, ms, &hosts)?,
        LabCommand::Sink => lab::sink(&names)?,
        LabCommand::Send {
            host,
            from,
            to,
            subject,
        } => Lab::open(&args.lab)?.submit(&host, &from, &to, &subject)?,
        LabCommand::Mails { json } => {
            print!("{}", lab::mails_listing(&Lab::open(&args.lab)?, json))
        }
        LabCommand::BootHost { host, mode, lower } => lab::boot_host_main(&lab::BootArgs {
            names: &names,
            host: &host,
            mode: mode.into(),
            lower: &lower,
        })?,
        LabCommand::Delayer { host, delay_us } => {
            lab::delayer_main(&names, &host, Duration::from_micros(delay_us))?
        }
    }
    Ok(())
}
