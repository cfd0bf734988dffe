//! Listing the directories an inventory is read from: inventory directories and the
//! `group_vars/NAME/` ones. Only files and directories are read from a listing: a FIFO or a
//! device there would block the read forever (or never end), so it is an error.

use std::path::{Path, PathBuf};

use crate::error::InputError;

/// What a directory entry is, its symbolic links followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    /// A regular file, or an entry that cannot be looked at (a dangling link): reading it
    /// says what is wrong.
    File,
    /// A FIFO, socket or device.
    Special,
}

pub(crate) fn kind(path: &Path) -> Kind {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Kind::Dir,
        Ok(meta) if !meta.is_file() => Kind::Special,
        _ => Kind::File,
    }
}

/// The error for a FIFO, socket or device found where a file was looked for.
pub(crate) fn special_error(path: &Path) -> InputError {
    InputError::new(format!(
        "{} is a FIFO, socket or device, not a file: postfleet reads only files from a directory",
        path.display()
    ))
    .hint("remove it from the directory; to read a pipe, give it to -i itself (-i <(ansible-inventory --list))")
}

/// The entries of `dir`, sorted by name.
pub(crate) fn list(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let cannot = |e: std::io::Error| {
        InputError::new(format!("cannot read directory {}: {e}", dir.display()))
            .hint("check the path and its permissions")
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(cannot)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(cannot)?;
    entries.sort();
    Ok(entries)
}

/// Every file under `dir` that `keep(name, is_dir)` keeps, by name, descending into the
/// subdirectories it keeps where they sort. Each real directory is read once: one reached
/// again through a symbolic link (back up, or a second way in) is not entered again.
pub(crate) fn files_under(
    dir: &Path,
    keep: &dyn Fn(&str, bool) -> bool,
) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    walk(dir, keep, &mut files, &mut Vec::new())?;
    Ok(files)
}

fn walk(
    dir: &Path,
    keep: &dyn Fn(&str, bool) -> bool,
    out: &mut Vec<PathBuf>,
    entered: &mut Vec<PathBuf>,
) -> Result<(), InputError> {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if entered.contains(&real) {
        return Ok(());
    }
    entered.push(real);
    for path in list(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let kind = kind(&path);
        if !keep(name, kind == Kind::Dir) {
            continue;
        }
        match kind {
            Kind::Dir => walk(&path, keep, out, entered)?,
            Kind::File => out.push(path),
            Kind::Special => return Err(special_error(&path)),
        }
    }
    Ok(())
}
