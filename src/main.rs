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
    raise_open_files_limit();
    cli::main()
}

/// Sets the soft limit on open files to the hard one. Every host being worked on holds a
/// socket (two through a bastion), so `--forks` in the thousands needs more than the usual
/// soft limit of 1024; the hard limit is what the administrator allows. postfleet waits on
/// its sockets with epoll, never select(), so a high limit costs nothing. On failure the
/// limit stays as it was (a connection over it then fails with its error).
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // An unlimited hard limit cannot be the soft one: Linux caps open files at
        // fs.nr_open, and asking for more is refused (the limit would stay at 1024).
        let cap = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        let wanted = cap.map_or(hard, |cap| hard.min(cap));
        if soft < wanted {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard);
        }
    }
}
