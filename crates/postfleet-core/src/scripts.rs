//! What every remote script postfleet sends starts with, and where it keeps its state on a
//! host. Scripts are fixed shell (`.sh` files beside their modules) that take their values as
//! positional parameters ([`postfleet_shell::with_args`]).

/// Written once, for both constants below (`concat!` takes literals only).
macro_rules! state_dir {
    () => {
        "/var/lib/postfleet"
    };
}

/// postfleet's directory on a host: owed reloads (`pending/`), the apply lock.
pub const STATE_DIR: &str = state_dir!();

/// The preamble of every script: C locale (stable tool output), a PATH that finds Postfix's
/// tools under sudo and cron alike, and `PF_STATE`.
pub const PREAMBLE: &str = concat!(
    "export LC_ALL=C\n",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n",
    "export PATH\n",
    "PF_STATE=",
    state_dir!(),
    "\n"
);

/// A script: `set --` with `args`, the preamble, then `body`.
pub fn script<I, W>(args: I, body: &str) -> String
where
    I: IntoIterator<Item = W>,
    W: AsRef<str>,
{
    postfleet_shell::with_args(args, &format!("{PREAMBLE}{body}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_preamble_names_the_state_dir() {
        assert!(super::PREAMBLE.contains(&format!("PF_STATE={}\n", super::STATE_DIR)));
    }
}
