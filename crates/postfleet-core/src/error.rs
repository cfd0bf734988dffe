//! Errors in user input: each one names where it comes from and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in an input file (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePos {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl SourcePos {
    pub fn new(file: &Path, line: usize, column: usize) -> Self {
        SourcePos {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file.display()),
            (l, 0) => write!(f, "{}:{}", self.file.display(), l),
            (l, c) => write!(f, "{}:{}:{}", self.file.display(), l, c),
        }
    }
}

/// Bad input: detected before any host is touched. Printed as
/// `error: FILE:LINE:COL: MESSAGE` (with `host H:` when a host is involved) and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub pos: Option<SourcePos>,
    pub host: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        InputError {
            pos: None,
            host: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn at(mut self, pos: SourcePos) -> Self {
        self.pos = Some(pos);
        self
    }
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = &self.pos {
            write!(f, "{pos}: ")?;
        }
        if let Some(host) = &self.host {
            write!(f, "host {host}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}
