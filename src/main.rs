//! The `postfleet` binary: the command line ([`cli`]), the fleet runner ([`apply`], [`ops`],
//! [`fleet`]) and what the user sees ([`report`]). Everything it decides comes from
//! `postfleet_core`; it talks to hosts through `postfleet_ssh`, and `postfleet lab` is
//! `postfleet_lab`.

mod apply;
mod cli;
mod fleet;
mod ops;
mod reach;
mod report;

fn main() -> std::process::ExitCode {
    cli::main()
}
