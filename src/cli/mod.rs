//! Command line: parses arguments and dispatches to the jobs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "postfleet",
    version,
    about = "Converge fleets of Postfix hosts over SSH"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Throwaway real mail hosts on this machine, for tests, demos and rehearsals.
    Lab(crate::lab::LabArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lab(cmd) => crate::lab::run(cmd),
    }
}
