//! `postfleet inventory`: the resolved hosts (groups, connection, vars) as YAML or JSON.

use std::collections::HashSet;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Host, Inventory};

/// The text printed by `postfleet inventory` for `hosts` (in the order given), followed by
/// the groups restricted to those hosts: YAML, or JSON when `json`. `connection` gives each
/// host's connection as resolved by the caller (with ssh_config, which this crate does not
/// read).
pub fn describe(
    inventory: &Inventory,
    hosts: &[Host],
    connection: &dyn Fn(&Host) -> serde_json::Value,
    json: bool,
) -> String {
    let view = View {
        inventory,
        hosts,
        connection,
    };
    // Serializing plain strings, numbers and maps cannot fail.
    if json {
        let mut text = serde_json::to_string_pretty(&view).unwrap_or_default();
        text.push('\n');
        text
    } else {
        serde_saphyr::to_string(&view).unwrap_or_default()
    }
}

struct View<'a> {
    inventory: &'a Inventory,
    hosts: &'a [Host],
    connection: &'a dyn Fn(&Host) -> serde_json::Value,
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("hosts", &HostsView(self.hosts, self.connection))?;
        map.serialize_entry("groups", &GroupsView(self))?;
        map.end()
    }
}

/// Hosts keyed by name, in inventory order.
struct HostsView<'a>(&'a [Host], &'a dyn Fn(&Host) -> serde_json::Value);

impl Serialize for HostsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for host in self.0 {
            map.serialize_entry(&host.name, &HostView(host, (self.1)(host)))?;
        }
        map.end()
    }
}

struct HostView<'a>(&'a Host, serde_json::Value);

impl Serialize for HostView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let host = self.0;
        let connection = &self.1;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("groups", &host.groups)?;
        map.serialize_entry("connection", &connection)?;
        // Values of secret-looking names (relay_password...) are never printed.
        let vars: serde_json::Map<String, serde_json::Value> = host
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), crate::secrets::redact_value(k, v)))
            .collect();
        map.serialize_entry("vars", &vars)?;
        map.end()
    }
}

/// Group -> member hosts among those shown; groups with none of them are left out.
struct GroupsView<'a>(&'a View<'a>);

impl Serialize for GroupsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let shown: HashSet<&str> = self.0.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut map = serializer.serialize_map(None)?;
        for (group, members) in &self.0.inventory.groups {
            let members: Vec<&String> = members
                .iter()
                .filter(|m| shown.contains(m.as_str()))
                .collect();
            if !members.is_empty() {
                map.serialize_entry(group, &members)?;
            }
        }
        map.end()
    }
}
