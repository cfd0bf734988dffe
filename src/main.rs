use std::process::ExitCode;

fn main() -> ExitCode {
    postfleet::cli::main()
}
