//! How a script reaches the host's `/bin/sh`: inside the exec request itself when it can
//! (one round trip fewer), else on the command's stdin.
//!
//! OpenSSH's sshd opens a session channel's window only once it has started the command, so
//! a script sent on stdin waits one round trip for that window. A script inside the exec
//! request waits for nothing. The request's command is read by the user's login shell, so
//! the script is quoted in a way POSIX shells and fish read alike, and `/bin/sh` checks that
//! it got the script whole (its length) before it runs a line of it. A login shell that reads
//! the quoting otherwise (csh, a restricted shell) never starts it: the command prints no
//! [`STARTED`] line, and the caller sends the script again on stdin ([`stdin_command`]).

/// The first line a script sent inside the exec request prints, before any of its own.
pub const STARTED: &str = "@@postfleet-started";

/// Exit status of the inline wrapper when `/bin/sh` did not get the script whole.
pub const MANGLED: u32 = 97;

/// Scripts up to this size travel inside the exec request. Linux takes one argument of at
/// most 128 KiB (MAX_ARG_STRLEN), and the login shell gets the whole command as one.
pub const INLINE_LIMIT: usize = 100 * 1024;

/// The variable the wrapper holds the script in (named so no script of ours uses it).
const HOLDER: &str = "__postfleet_script";

/// The exec request's command that runs `script` with `/bin/sh` (through `sudo -n` when
/// `become_root`), the script inside it; None when the script is too large or not ASCII
/// (the wrapper's length check counts bytes, which a multibyte locale would not).
pub fn inline_command(script: &str, become_root: bool) -> Option<String> {
    if script.len() > INLINE_LIMIT || !script.is_ascii() {
        return None;
    }
    let command = sh_c(&wrapper(script.len()), script, become_root);
    // Quoting grows a script with many quotes or backslashes: the limit is on what is sent.
    (command.len() <= INLINE_LIMIT).then_some(command)
}

/// `exec [sudo -n] /bin/sh -c WRAPPER postfleet SCRIPT`, both words quoted for the login shell.
fn sh_c(wrapper: &str, script: &str, become_root: bool) -> String {
    let sudo = if become_root { "sudo -n " } else { "" };
    format!(
        "exec {sudo}/bin/sh -c {} postfleet {}",
        quote(wrapper),
        quote(script)
    )
}

/// What `/bin/sh -c` runs: checks the script arrived whole, says it started, runs it with
/// stdin from /dev/null and no positional parameters (as `sh -s` would have). As one brace
/// group, as on stdin ([`guard_stdin`]): the whole script is parsed before any of it runs
/// (`eval` alone would run the lines before a syntax error).
fn wrapper(len: usize) -> String {
    format!(
        "if [ \"${{#1}}\" = {len} ]; then echo {STARTED}; {HOLDER}=$1; shift; \
         eval \"{{
${HOLDER}
}}\" </dev/null; else exit {MANGLED}; fi"
    )
}

/// The command and stdin that run `script` with `/bin/sh -s`: any size, any bytes, one round
/// trip more than [`inline_command`].
pub fn stdin_command(script: &str, become_root: bool) -> (&'static str, String) {
    let command = if become_root {
        "sudo -n /bin/sh -s"
    } else {
        "/bin/sh -s"
    };
    (command, guard_stdin(script))
}

/// The script travels on the shell's stdin, which the shell reads as it goes: a command in
/// it that reads stdin (`script`, `ssh`, a stray `cat`) would swallow the rest of the script.
/// As one brace group, the whole script is parsed before anything runs, and runs with
/// stdin from /dev/null.
pub fn guard_stdin(script: &str) -> String {
    let newline = if script.ends_with('\n') { "" } else { "\n" };
    format!("{{\n{script}{newline}}} </dev/null\n")
}

/// Quotes `text` as one word for POSIX shells and for fish: single-quoted runs, with `'` and
/// `\` outside the quotes as `\'` and `\\` (inside single quotes fish reads those two as
/// escapes; POSIX shells read them literally outside quotes the same way fish does).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut open = false;
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            if open {
                out.push('\'');
                open = false;
            }
            out.push('\\');
            out.push(c);
        } else {
            if !open {
                out.push('\'');
                open = true;
            }
            out.push(c);
        }
    }
    if open {
        out.push('\'');
    }
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// The script an [`inline_command`] carries, and whether it runs through sudo: its inverse,
/// for a simulated host, which answers by script rather than by shell. None for any other
/// command (a [`stdin_command`] among them).
pub fn inline_script(command: &str) -> Option<(String, bool)> {
    let rest = command.strip_prefix("exec ")?;
    let (rest, become_root) = match rest.strip_prefix("sudo -n ") {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    let words = unquote_words(rest.strip_prefix("/bin/sh -c ")?)?;
    match words.as_slice() {
        [wrapped, name, script] if name == "postfleet" && *wrapped == wrapper(script.len()) => {
            Some((script.clone(), become_root))
        }
        _ => None,
    }
}

/// Splits words quoted as [`quote`] writes them.
fn unquote_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Runs `command` as sshd would: `SHELL -c COMMAND`.
    fn run_with(shell: &str, command: &str) -> (String, i32) {
        let out = Command::new(shell)
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    const TRICKY: &str =
        "printf '%s\\n' \"a'b\" 'c\\\\d' \"$#\"\necho \"tab:\t\" ${HOME+set}\nexit 3\n";

    #[test]
    fn a_posix_login_shell_runs_the_script_whole() {
        let command = inline_command(TRICKY, false).unwrap();
        for shell in ["sh", "bash"] {
            let (out, code) = run_with(shell, &command);
            assert_eq!(
                out,
                format!("{STARTED}\na'b\nc\\\\d\n0\ntab:\t set\n"),
                "{shell}"
            );
            assert_eq!(code, 3, "{shell}");
        }
    }

    #[test]
    fn a_login_shell_that_mangles_the_script_never_starts_it() {
        // What a login shell that read `\\` inside quotes as one backslash would pass on.
        let command = inline_command(TRICKY, false).unwrap();
        let wrapped = wrapper(TRICKY.len());
        let mangled = TRICKY.replace("\\\\", "\\");
        let (out, code) = run_with("sh", &sh_c(&wrapped, &mangled, false));
        assert_eq!((out.as_str(), code), ("", MANGLED as i32));
        assert!(command.len() > TRICKY.len());
    }

    #[test]
    fn a_script_with_a_syntax_error_runs_none_of_its_lines() {
        let command = inline_command("echo first\nif then\n", false).unwrap();
        let (out, code) = run_with("sh", &command);
        assert_eq!(out, format!("{STARTED}\n"));
        assert_ne!(code, 0);
    }

    #[test]
    fn scripts_too_large_or_not_ascii_go_on_stdin() {
        // small, but its quoting would not be
        assert!(inline_command(&"'".repeat(INLINE_LIMIT / 2 + 1000), false).is_none());
        assert!(inline_command(&"#\n".repeat(INLINE_LIMIT), false).is_none());
        assert!(inline_command("echo caf\u{e9}\n", false).is_none());
        let (command, stdin) = stdin_command("echo hi\n", true);
        assert_eq!(command, "sudo -n /bin/sh -s");
        assert_eq!(stdin, guard_stdin("echo hi\n"));
        assert_eq!(inline_script(command), None);
    }

    #[test]
    fn a_simulator_reads_the_script_back() {
        for become_root in [false, true] {
            let command = inline_command(TRICKY, become_root).unwrap();
            assert_eq!(
                inline_script(&command),
                Some((TRICKY.to_string(), become_root))
            );
        }
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}

#[cfg(test)]
mod guard_tests {
    #[test]
    fn script_runs_whole_with_stdin_closed() {
        // Longer than the shell's read buffer, so `cat` would get the rest of it unguarded.
        let script = format!("echo a\ncat\n{}echo b\n", "# padding\n".repeat(20_000));
        let run = |text: &str| {
            let mut child = std::process::Command::new("sh")
                .arg("-s")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let text = text.to_string();
            // written from a thread: `cat` echoes it back while we read
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(text.as_bytes());
            });
            let out = child.wait_with_output().unwrap().stdout;
            writer.join().unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_ne!(
            run(&script),
            "a\nb\n",
            "the unguarded script should be eaten by cat"
        );
        assert_eq!(run(&super::guard_stdin(&script)), "a\nb\n");
    }
}
