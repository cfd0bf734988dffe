//! Rendering: a playbook, an inventory and extra vars become each host's desired state.
//! Every error (undefined variable, bad rendered value) names the template position and
//! the host; nothing here touches a host.

use crate::error::InputError;
use crate::inventory::{Host, Inventory, VarMap};
use crate::model::DesiredHost;
use crate::playbook::Playbook;

mod context;
mod instance;

pub use context::{play_context, play_context_with, GroupsSlot};

/// The desired state of `host`: every play whose pattern matches it, in order; a later play
/// declaring the same instance overrides what it sets (parameters by name, master.cf
/// entries by service/type, files by path, and the scalar fields it gives).
pub fn render_host(
    playbook: &Playbook,
    inventory: &Inventory,
    host: &Host,
    extra_vars: &VarMap,
) -> Result<DesiredHost, InputError> {
    render_host_with(
        playbook,
        inventory,
        host,
        extra_vars,
        &mut GroupsSlot::default(),
    )
}

/// [`render_host`] with `groups` built once for many hosts.
fn render_host_with(
    playbook: &Playbook,
    inventory: &Inventory,
    host: &Host,
    extra_vars: &VarMap,
    groups: &mut GroupsSlot,
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
        let mut context = play_context_with(playbook, inventory, host, play, extra_vars, groups)?;
        let rendered = render_play(playbook, host, play, &context, &config_dirs, &mut desired);
        groups.take_back(&mut context);
        rendered?;
    }
    Ok(desired)
}

/// The instances of `play` on `host` into `desired`.
fn render_play(
    playbook: &Playbook,
    host: &Host,
    play: &crate::playbook::Play,
    context: &tera::Context,
    config_dirs: &[String],
    desired: &mut DesiredHost,
) -> Result<(), InputError> {
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
        let other_dirs: Vec<String> = config_dirs.iter().filter(|d| **d != own).cloned().collect();
        let renderer = instance::Renderer {
            templates: &playbook.templates,
            context,
            host: &host.name,
            other_dirs: &other_dirs,
        };
        renderer.apply(spec, &mut desired.instances[index])?;
    }
    Ok(())
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
    let mut groups = GroupsSlot::default();
    for host in hosts {
        match render_host_with(playbook, inventory, host, extra_vars, &mut groups) {
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
