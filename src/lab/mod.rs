//! `postfleet lab`: throwaway real mail hosts (sshd, Postfix, systemd) on this machine.

use std::process::ExitCode;

/// Subcommands of `postfleet lab`.
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Show the lab's hosts.
    Status,
}

pub fn run(cmd: LabCommand) -> ExitCode {
    match cmd {
        LabCommand::Status => {
            eprintln!("error: the lab is not built yet");
            ExitCode::from(1)
        }
    }
}
