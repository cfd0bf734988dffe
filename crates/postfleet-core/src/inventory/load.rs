//! Reading inventory sources and resolving each host: its groups, merged variables and
//! connection settings.

use std::path::{Path, PathBuf};

use super::build::Builder;
use super::connection::absolute_dir;
use super::{yaml, yaml_inv, Inventory, VarMap};
use crate::error::InputError;

/// Reads the inventory at `path` and resolves every host; `extra_vars` (from `-e`) override
/// everything, connection variables included.
pub fn load(path: &Path, extra_vars: &VarMap) -> Result<Inventory, InputError> {
    load_all(&[path.to_path_buf()], extra_vars)
}

/// Reads every inventory source in order (files or directories), merges them as Ansible
/// does (a later source wins at the same precedence) and resolves every host.
pub fn load_all(paths: &[PathBuf], extra_vars: &VarMap) -> Result<Inventory, InputError> {
    let mut builder = Builder::new();
    for path in paths {
        let text = yaml::read_text(path, "inventory")?;
        read_file(&text, path, &mut builder)?;
    }
    let extra_base = paths
        .first()
        .map(|p| absolute_dir(p))
        .unwrap_or_else(|| PathBuf::from("."));
    builder.finish(paths.to_vec(), extra_vars, &extra_base)
}

/// [`load`] on text already read; `path` names the file in errors and anchors relative
/// paths.
pub fn parse(text: &str, path: &Path, extra_vars: &VarMap) -> Result<Inventory, InputError> {
    let mut builder = Builder::new();
    read_file(text, path, &mut builder)?;
    builder.finish(vec![path.to_path_buf()], extra_vars, &absolute_dir(path))
}

/// One inventory file into `builder`.
fn read_file(text: &str, path: &Path, builder: &mut Builder) -> Result<(), InputError> {
    builder.start_file(path);
    yaml_inv::read(text, path, builder)
}
