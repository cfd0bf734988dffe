//! Command line: parses arguments, runs the job, maps the outcome to an exit code.

mod docs;
mod lab;
mod ops;
mod run;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use postfleet_core::exit::Exit;

/// The exit code of a run.
pub fn exit_code(e: Exit) -> ExitCode {
    ExitCode::from(e.code())
}

const AFTER_HELP: &str = "\
Exit codes: 0 converged; 2 a host failed; 3 a host was unreachable; 4 bad input;
5 drift found or fixed (with --detailed-exitcode); 6 another run holds the lock;
130 interrupted.

Examples:
  postfleet plan  -i inventory/lab.yml playbooks/newsletter.yml
  postfleet apply -i inventory/lab.yml playbooks/newsletter.yml --limit 'mx:!h3' -e newsletter_domain=example.net
  postfleet apply -i prod.yml site.yml --json --detailed-exitcode     # from cron
  postfleet lab up --hosts 3 && postfleet lab inventory > lab.yml";

#[derive(Debug, Parser)]
#[command(
    name = "postfleet",
    version,
    about = "Converge fleets of Postfix hosts, multi-instance included, over SSH",
    long_about = "Converge fleets of Postfix hosts, multi-instance included, over SSH.\n\n\
        An inventory (Ansible's YAML, INI or JSON) says which hosts and how to reach them; a playbook \
        declares Postfix instances (main.cf parameters, master.cf services, lookup tables, \
        templates). postfleet gathers facts in one round trip per host, plans locally, and \
        applies the changes in one more round trip: a second run changes nothing.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge hosts to a playbook (--check: only show what would change).
    Apply(ApplyArgs),
    /// Show per-host diffs and steps without changing anything (= apply --check --diff).
    Plan(ApplyArgs),
    /// Report what changed on the hosts outside postfleet since its last apply, changing
    /// nothing (exit 5 when something drifted, 0 when nothing did).
    Drift(ApplyArgs),
    /// Print the resolved hosts, their groups, connection settings and variables.
    Inventory(InventoryArgs),
    /// Instances per host: enabled, unit or process state, queue size.
    Status(OpsArgs),
    /// Per-instance mail queues across the fleet.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// An instance's log lines across the fleet (journal or maillog_file).
    Logs {
        #[command(flatten)]
        ops: OpsArgs,
        /// Only this instance; repeat for several. Default: all.
        #[arg(long = "instance", value_name = "NAME")]
        instances: Vec<String>,
        /// How far back: 30s, 10m, 2h, 1d.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        since: String,
        /// At most this many lines per instance and host.
        #[arg(short = 'n', long, default_value_t = 200, value_name = "N")]
        lines: u32,
    },
    /// Throwaway real mail hosts on this machine, for tests, demos and rehearsals.
    Lab(lab::LabArgs),
    /// Print the shell completion script: `source <(postfleet completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: docs::Shell,
    },
    /// Print the manual page (roff): `postfleet man | man -l -`.
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Progress bars on a terminal, plain lines otherwise.
    Auto,
    /// One line per event.
    Plain,
    /// One JSON object per line; the last line is a summary.
    Json,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Inventory: a file in Ansible's YAML or INI format or the JSON of `ansible-inventory
    /// --list` (told apart by content), or a directory of them (read by name). Repeat -i, or
    /// separate with commas (in POSTFLEET_INVENTORY too), to merge several: a later one wins.
    /// The group_vars/ and host_vars/ beside each are read.
    #[arg(
        short = 'i',
        long,
        env = "POSTFLEET_INVENTORY",
        value_name = "PATH",
        value_delimiter = ',',
        required = true
    )]
    pub inventory: Vec<std::path::PathBuf>,
    /// Only these hosts: names, groups, globs; `a:b` union, `a:&b` intersection, `!a` exclusion.
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Extra variables, highest precedence: `key=value`, `@vars.yml`, or a YAML/JSON mapping.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Playbook file (YAML list of plays).
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: std::path::PathBuf,
    /// Change nothing: report what would change.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show unified diffs of files that change (secrets hidden).
    #[arg(short = 'D', long)]
    pub diff: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output style.
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    pub output: Output,
    /// Same as --output json.
    #[arg(long)]
    pub json: bool,
    /// Destroy absent instances even when their queue holds mail (the mail is deleted).
    #[arg(long)]
    pub force: bool,
    /// Exit 5 when changes were needed (--check) or made, 0 when all was in sync.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// More output: ok and skipped steps, phases (repeat for more).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print where time went per host (connect, facts, plan, apply) after the recap.
    #[arg(long)]
    pub timings: bool,
    /// Roll out in batches: a number of hosts, a percentage, or a list (`1,10%,100%`: the last
    /// one repeats). Each batch ends before the next starts. Default: the plays' `serial:`,
    /// else one batch.
    #[arg(long, value_name = "N|P%|LIST")]
    pub serial: Option<String>,
    /// The order hosts go in batches.
    #[arg(long, value_enum, default_value_t = HostOrder::Inventory)]
    pub order: HostOrder,
    /// Go on after failures while at most this percentage of all the run's hosts failed or
    /// were unreachable (default: stop after the first batch with a failure). Default: the
    /// plays' `max_fail_percentage:`.
    #[arg(long, value_name = "P", value_parser = percentage)]
    pub max_fail_percentage: Option<f64>,
    /// In check mode (`plan`), show each host's changes under it instead of one block per
    /// distinct change with the hosts it applies to.
    #[arg(long)]
    pub per_host: bool,
}

/// The order of hosts in a rollout (Ansible's `order:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostOrder {
    /// As the inventory lists them.
    Inventory,
    /// By name.
    Sorted,
    /// At random.
    Shuffle,
}

fn percentage(text: &str) -> Result<f64, String> {
    text.trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("`{text}` is not a percentage from 0 to 100"))
}

/// How to reach hosts: shared by every command that connects.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Hosts worked on at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// Learn the keys of hosts not yet in known_hosts (a changed key is still refused).
    #[arg(long)]
    pub accept_new: bool,
    /// Seconds allowed for TCP connect, SSH handshake and authentication (1 to 3600;
    /// default: ssh_config's ConnectTimeout, else 10).
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: Option<u64>,
    #[command(flatten)]
    pub ssh_config: SshConfigArg,
    /// Seconds allowed for one remote command (facts, or the whole apply of a host; 1 to
    /// 86400).
    #[arg(long, default_value_t = 300, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub command_timeout: u64,
}

/// Which OpenSSH client configuration describes the hosts.
#[derive(Debug, Args)]
pub struct SshConfigArg {
    /// OpenSSH client config to read (as `ssh -F FILE`), or `none`. Default: the inventory
    /// var `ssh_config_file`, else ~/.ssh/config and /etc/ssh/ssh_config.
    #[arg(long = "ssh-config", value_name = "FILE|none")]
    pub file: Option<String>,
}

/// Fleet operations: which hosts, how to reach them, how to print.
#[derive(Debug, Args)]
pub struct OpsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages (what `postmulti -i NAME -x mailq` shows), one row per message.
    List {
        #[command(flatten)]
        ops: OpsArgs,
        /// Only this instance (`-` is the default one); repeat for several. Default: all.
        #[arg(long = "instance", value_name = "NAME")]
        instances: Vec<String>,
    },
    /// Ask the instance to retry delivery of its deferred mail now (`postqueue -f`).
    Flush {
        #[command(flatten)]
        ops: OpsArgs,
        /// Only this instance; repeat for several. Default: all.
        #[arg(long = "instance", value_name = "NAME")]
        instances: Vec<String>,
    },
    /// Delete EVERY message in the instance's queue (`postsuper -d ALL`). Asks first on a
    /// terminal; elsewhere it needs --yes.
    Purge {
        #[command(flatten)]
        ops: OpsArgs,
        /// The instance whose queue is deleted (required; repeat for several).
        #[arg(long = "instance", value_name = "NAME", required = true)]
        instances: Vec<String>,
        /// Do not ask: delete.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub ssh_config: SshConfigArg,
    /// JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Success
            };
            let _ = e.print();
            return exit_code(code);
        }
    };
    exit_code(match cli.command {
        Command::Apply(args) => run::apply(args, run::RunKind::Apply),
        Command::Plan(args) => run::apply(args, run::RunKind::Plan),
        Command::Drift(args) => run::apply(args, run::RunKind::Drift),
        Command::Inventory(args) => run::inventory(args),
        Command::Status(args) => ops::status(args),
        Command::Queue(cmd) => ops::queue(cmd),
        Command::Logs {
            ops: args,
            instances,
            since,
            lines,
        } => ops::logs(args, instances, &since, lines),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man => docs::man(),
    })
}
