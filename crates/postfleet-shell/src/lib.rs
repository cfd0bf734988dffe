//! Remote shell command lines, built from three kinds of pieces and nothing else (and
//! [`ExecOutput`], what such a command printed):
//!
//! - a **word**: any string, quoted for a POSIX shell, so it reaches the command as one
//!   argument whatever it holds (`$(...)`, quotes, newlines);
//! - a **base64 word**: bytes as base64 text, which needs no quoting (file contents, messages);
//! - **fixed text**: shell written by the programmer, a `&'static str`, so that no value from
//!   an inventory or a playbook can ever reach a command line unquoted.
//!
//! ```
//! use postfleet_shell::Line;
//! let line = Line::new().text("postmulti -i").word("postfix-a b").text("-e enable");
//! assert_eq!(line.build(), "postmulti -i 'postfix-a b' -e enable");
//! ```
//!
//! Longer fixed shell lives in `.sh` files that read their values as positional parameters;
//! [`with_args`] puts them there with one `set --` line.

use base64::Engine;

/// `word` quoted for a POSIX shell. A word with a NUL byte cannot be passed to a command at
/// all (C strings end there): it becomes the empty word, which callers validate against.
pub fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".into())
}

/// Bytes as one base64 word (its alphabet needs no quoting).
pub fn base64_word(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A command line under construction: pieces are separated by one space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line(String);

impl Line {
    pub fn new() -> Line {
        Line::default()
    }

    fn push(mut self, piece: &str) -> Line {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(piece);
        self
    }

    /// Fixed shell text, as written.
    pub fn text(self, fixed: &'static str) -> Line {
        self.push(fixed)
    }

    /// One quoted word.
    pub fn word(self, word: impl AsRef<str>) -> Line {
        self.push(&quote(word.as_ref()))
    }

    /// Several quoted words.
    pub fn words<I, W>(self, words: I) -> Line
    where
        I: IntoIterator<Item = W>,
        W: AsRef<str>,
    {
        words.into_iter().fold(self, |line, w| line.word(w))
    }

    /// One base64 word.
    pub fn base64(self, bytes: &[u8]) -> Line {
        self.push(&base64_word(bytes))
    }

    /// Another line's text (already built from these pieces).
    pub fn line(self, other: &Line) -> Line {
        self.push(&other.0)
    }

    pub fn build(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fixed script with its values as positional parameters: `set -- 'a' 'b'` then `body`.
pub fn with_args<I, W>(args: I, body: &str) -> String
where
    I: IntoIterator<Item = W>,
    W: AsRef<str>,
{
    format!("{}\n{body}", Line::new().text("set --").words(args).build())
}

/// What one remote command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// None when the command died of a signal or the channel closed without a status.
    pub exit_status: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_fixed_text_is_not() {
        let line = Line::new()
            .text("printf '%s\\n'")
            .word("$(touch /tmp/x)")
            .word("it's")
            .base64(b"a\nb");
        assert_eq!(
            line.build(),
            "printf '%s\\n' '$(touch /tmp/x)' \"it's\" YQpi"
        );
    }

    #[test]
    fn a_nul_byte_gives_the_empty_word() {
        assert_eq!(quote("a\0b"), "''");
    }

    #[test]
    fn arguments_reach_the_script_whole() {
        let script = with_args(["a b", "", "c;d"], "printf '[%s]' \"$@\"");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "[a b][][c;d]");
    }
}
