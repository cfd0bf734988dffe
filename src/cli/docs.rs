//! Shell completions and the manual page, generated from the same clap definitions as the
//! command line itself, so they cannot drift from it (the package installs their output).

use std::io::Write;

use clap::{CommandFactory, ValueEnum};

use super::{Cli, Exit};

/// Shells `postfleet completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> Exit {
    let mut command = Cli::command();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut command, "postfleet", &mut script);
    let mut out = std::io::stdout().lock();
    finish(out.write_all(&script).and_then(|()| out.flush()))
}

/// Prints postfleet(1) in roff on stdout: the command, then a section per subcommand.
pub fn man() -> Exit {
    let command = Cli::command();
    let mut page = Vec::new();
    let rendered = clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .and_then(|()| subcommand_sections(&command, &mut page));
    if let Err(e) = rendered {
        eprintln!("error: cannot render the manual page: {e}");
        return Exit::Internal;
    }
    let mut out = std::io::stdout().lock();
    finish(out.write_all(&page).and_then(|()| out.flush()))
}

/// One roff section per subcommand with its options (clap_mangen lists subcommands by name
/// only): `man postfleet` then documents every flag of every command.
fn subcommand_sections(command: &clap::Command, page: &mut Vec<u8>) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("postfleet {}", sub.get_name());
        writeln!(page, ".SH \"{}\"", roff_escape(&name.to_uppercase()))?;
        if let Some(about) = sub.get_about() {
            writeln!(page, "{}", roff_escape(&about.to_string()))?;
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let mut flag = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) => format!("-{s}, --{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => format!("<{}>", arg.get_id()),
            };
            if arg.get_action().takes_values() && arg.get_long().is_some() {
                if let Some(names) = arg.get_value_names() {
                    let shown: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                    flag.push_str(&format!(" {}", shown.join(" ")));
                }
            }
            writeln!(page, ".TP\n\\fB{}\\fR", roff_escape(&flag))?;
            if let Some(help) = arg.get_help() {
                writeln!(page, "{}", roff_escape(&help.to_string()))?;
            }
        }
        for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
            writeln!(
                page,
                ".TP\n\\fB{} {}\\fR",
                roff_escape(&name),
                nested.get_name()
            )?;
            if let Some(about) = nested.get_about() {
                writeln!(page, "{}", roff_escape(&about.to_string()))?;
            }
        }
    }
    Ok(())
}

/// Text as roff reads it literally: backslashes doubled, a leading `.` or `'` guarded.
fn roff_escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('-', "\\-");
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
}

/// Exit 0, or a clear error when stdout is gone (e.g. a closed pipe).
fn finish(result: std::io::Result<()>) -> Exit {
    match result {
        Ok(()) => Exit::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Success,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            Exit::Internal
        }
    }
}
