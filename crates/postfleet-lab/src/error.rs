//! The lab's errors, with the exit codes every postfleet command uses.

use postfleet_core::exit::Exit;

/// A lab error that says which exit code it deserves; anything else the lab reports (a
/// command that failed, a file that could not be written) exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabError {
    /// The request does not fit: a bad name or number, a lab that does not exist or is
    /// already up, an overlapping subnet, an unknown host. Nothing was changed (exit 4).
    #[error("{0}")]
    BadInput(String),
    /// Not root, a missing tool: the machine cannot run a lab as it is (exit 1).
    #[error("{0}")]
    Environment(String),
}

impl LabError {
    pub fn exit(&self) -> Exit {
        match self {
            LabError::BadInput(_) => Exit::BadInput,
            LabError::Environment(_) => Exit::Internal,
        }
    }

    /// The exit code of any error a lab command returned.
    pub fn exit_of(e: &anyhow::Error) -> Exit {
        e.chain()
            .find_map(|cause| cause.downcast_ref::<LabError>())
            .map_or(Exit::Internal, LabError::exit)
    }
}

/// Returns `Err(LabError::BadInput(..))` (as an anyhow error) from the function.
macro_rules! bad_input {
    ($($arg:tt)*) => {
        return Err($crate::error::bad_input_error!($($arg)*))
    };
}

/// `LabError::BadInput(..)` as an anyhow error.
macro_rules! bad_input_error {
    ($($arg:tt)*) => {
        anyhow::Error::new($crate::error::LabError::BadInput(format!($($arg)*)))
    };
}

/// Returns `Err(LabError::Environment(..))` (as an anyhow error) from the function.
macro_rules! environment {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::error::LabError::Environment(format!($($arg)*))))
    };
}
pub(crate) use {bad_input, bad_input_error, environment};
