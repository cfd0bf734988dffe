//! How work on one host ended, for apply and fleet operations alike.

/// Why a host has no result: it could not be reached (connect, host key, auth, a lost
/// connection), or something on it failed. Unreachable hosts exit 3, failed ones 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProblem {
    Unreachable(String),
    Failed(String),
}

impl HostProblem {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HostProblem::Unreachable(_))
    }

    /// The reason, without the "unreachable:" prefix.
    pub fn reason(&self) -> &str {
        match self {
            HostProblem::Unreachable(e) | HostProblem::Failed(e) => e,
        }
    }
}

impl std::fmt::Display for HostProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostProblem::Unreachable(e) => write!(f, "unreachable: {e}"),
            HostProblem::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// What one host gave: its value, or why there is none.
#[derive(Debug, Clone)]
pub struct HostResult<T> {
    pub host: String,
    pub result: Result<T, HostProblem>,
}
