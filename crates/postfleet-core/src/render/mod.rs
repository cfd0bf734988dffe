//! Rendering: a playbook, an inventory and extra vars become each host's desired state.
//! Every error (undefined variable, bad rendered value) names the template position and
//! the host; nothing here touches a host.

use crate::error::InputError;
use crate::inventory::{Host, Inventory, VarMap};
use crate::model::DesiredHost;
use crate::playbook::Playbook;

mod context;
mod instance;

pub use context::play_context;

/// The desired state of `host`: every play whose pattern matches it, in order; a later play
/// declaring the same instance overrides what it sets (parameters by name, master.cf
/// entries by service/type, files by path, and the scalar fields it gives).
pub fn render_host(
    playbook: &Playbook,
    inventory: &Inventory,
    host: &Host,
    extra_vars: &VarMap,
) -> Result<DesiredHost, InputError> {
    let mut desired = DesiredHost::default();
    // Every config dir the host's instances have (the default instance's always): an
    // instance's files may not land in another's.
    let mut config_dirs = vec![crate::model::InstanceName::default_instance().config_dir()];
    for play in playbook.plays.iter().filter(|p| p.hosts.matches(host)) {
        for spec in &play.instances {
            let dir = spec.name.config_dir();
            if !config_dirs.contains(&dir) {
                config_dirs.push(dir);
            }
        }
    }
    for play in playbook
        .plays
        .iter()
        .filter(|play| play.hosts.matches(host))
    {
        let context = play_context(playbook, inventory, host, play, extra_vars)?;
        for spec in &play.instances {
            let index = match desired.instances.iter().position(|i| i.name == spec.name) {
                Some(index) => index,
                None => {
                    desired
                        .instances
                        .push(crate::model::DesiredInstance::new(spec.name.clone()));
                    desired.instances.len() - 1
                }
            };
            let own = spec.name.config_dir();
            let other_dirs: Vec<String> =
                config_dirs.iter().filter(|d| **d != own).cloned().collect();
            let renderer = instance::Renderer {
                templates: &playbook.templates,
                context: &context,
                host: &host.name,
                other_dirs: &other_dirs,
            };
            renderer.apply(spec, &mut desired.instances[index])?;
        }
    }
    Ok(desired)
}

/// Renders every host in `hosts` (same order in the result) before anything else happens;
/// on failure, the first error of each host that failed.
pub fn render_all(
    playbook: &Playbook,
    inventory: &Inventory,
    hosts: &[Host],
    extra_vars: &VarMap,
) -> Result<Vec<DesiredHost>, Vec<InputError>> {
    let mut rendered = Vec::with_capacity(hosts.len());
    let mut errors = Vec::new();
    for host in hosts {
        match render_host(playbook, inventory, host, extra_vars) {
            Ok(desired) => rendered.push(desired),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(rendered)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
