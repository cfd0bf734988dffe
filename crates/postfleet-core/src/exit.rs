//! The exit-code contract, one for every postfleet command (the README's "Exit codes").

/// How a postfleet command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every host converged (or, with --check, would need nothing... unless --detailed-exitcode).
    Success = 0,
    /// A bug or an environment problem postfleet did not expect (not root, a missing tool).
    Internal = 1,
    /// At least one host failed a step.
    HostFailed = 2,
    /// At least one host could not be reached (and none failed).
    Unreachable = 3,
    /// Bad input: options, inventory, playbook, templates. Nothing was touched.
    BadInput = 4,
    /// With --detailed-exitcode: changes were needed (check) or made (apply), none failed.
    Drift = 5,
    /// Another postfleet run holds the lock for this inventory (or this lab).
    Locked = 6,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}
