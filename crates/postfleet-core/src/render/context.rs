//! The variables a play's templates see on one host, with templated variables rendered.
//!
//! Precedence, lowest first: play `defaults`, inventory vars (all < groups < host), play
//! `vars`, extra vars, then the names postfleet sets (`inventory_hostname`, `group_names`,
//! `groups`). A variable whose value holds tera syntax is rendered with the others, after
//! the ones it mentions; a loop between such variables is an error.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::InputError;
use crate::inventory::{Host, Inventory, VarMap};
use crate::playbook::templates::{holds_template, identifiers, is_template, render_one_off};
use crate::playbook::{Play, PlayVar, Playbook, VarValue};

enum Slot<'p> {
    Ready(Value),
    /// A play variable holding compiled templates.
    Play(&'p PlayVar),
    /// An inventory or `-e` value holding tera syntax.
    Foreign(Value),
}

impl Slot<'_> {
    fn from_value(value: &Value) -> Slot<'static> {
        if holds_template(value) {
            Slot::Foreign(value.clone())
        } else {
            Slot::Ready(value.clone())
        }
    }
}

fn play_slot(var: &PlayVar) -> Slot<'_> {
    match &var.value {
        VarValue::Plain(value) => Slot::Ready(value.clone()),
        _ => Slot::Play(var),
    }
}

/// The `groups` variable (every group with every member) for many hosts: built once, on
/// first use, then lent to each host's context and taken back ([`GroupsSlot::take_back`])
/// instead of being built (or cloned) for every host, which made rendering a fleet whose
/// templates read `groups` quadratic in its size.
#[derive(Debug, Default)]
pub struct GroupsSlot {
    value: Option<Value>,
    /// The value is in a context (not to be confused with a variable of the user's own
    /// named `groups`, which is left where it is).
    lent: bool,
}

impl GroupsSlot {
    fn lend(&mut self, inventory: &Inventory) -> Value {
        self.lent = true;
        self.value
            .take()
            .unwrap_or_else(|| serde_json::json!(inventory.groups))
    }

    fn give_back(&mut self, value: Option<Value>) {
        if std::mem::take(&mut self.lent) {
            self.value = value;
        }
    }

    /// Takes `groups` back from a context [`play_context_with`] made with this slot.
    pub fn take_back(&mut self, context: &mut tera::Context) {
        if self.lent {
            let value = context.remove("groups");
            self.give_back(value);
        }
    }
}

/// The context for `play`'s templates on `host`.
pub fn play_context(
    playbook: &Playbook,
    inventory: &Inventory,
    host: &Host,
    play: &Play,
    extra_vars: &VarMap,
) -> Result<tera::Context, InputError> {
    play_context_with(
        playbook,
        inventory,
        host,
        play,
        extra_vars,
        &mut GroupsSlot::default(),
    )
}

/// [`play_context`] with `groups` lent from `groups` (give it back with
/// [`GroupsSlot::take_back`] once the context is no longer needed).
pub fn play_context_with(
    playbook: &Playbook,
    inventory: &Inventory,
    host: &Host,
    play: &Play,
    extra_vars: &VarMap,
    groups: &mut GroupsSlot,
) -> Result<tera::Context, InputError> {
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    for var in &play.defaults {
        slots.insert(var.name.clone(), play_slot(var));
    }
    for (name, value) in &host.vars {
        slots.insert(name.clone(), Slot::from_value(value));
    }
    for var in &play.vars {
        slots.insert(var.name.clone(), play_slot(var));
    }
    for (name, value) in extra_vars {
        slots.insert(name.clone(), Slot::from_value(value));
    }
    let foreign_mentions_groups = slots.values().any(|slot| match slot {
        Slot::Foreign(value) => value.to_string().contains("groups"),
        _ => false,
    });
    for (name, value) in magic_vars(host) {
        slots.insert(name, Slot::Ready(value));
    }
    // Costly on big fleets (every group with every member), hence only when used.
    if playbook.templates.references("groups") || foreign_mentions_groups {
        slots.insert("groups".to_string(), Slot::Ready(groups.lend(inventory)));
    }

    let pending: Vec<String> = slots
        .iter()
        .filter(|(_, slot)| !matches!(slot, Slot::Ready(_)))
        .map(|(name, _)| name.clone())
        .collect();
    let mut resolver = Resolver {
        playbook,
        host: &host.name,
        slots,
        stack: Vec::new(),
    };
    for name in pending {
        if let Err(error) = resolver.resolve(&name) {
            if groups.lent {
                let value = match resolver.slots.remove("groups") {
                    Some(Slot::Ready(value)) => Some(value),
                    _ => None,
                };
                groups.give_back(value);
            }
            return Err(error);
        }
    }
    let vars: serde_json::Map<String, Value> = resolver
        .slots
        .into_iter()
        .filter_map(|(name, slot)| match slot {
            Slot::Ready(value) => Some((name, value)),
            _ => None,
        })
        .collect();
    // An object is always accepted.
    Ok(tera::Context::from_value(Value::Object(vars)).unwrap_or_default())
}

/// `inventory_hostname`, `inventory_hostname_short`, `group_names` (without `all` and
/// `ungrouped`, sorted, as Ansible does); `groups` is added by the caller when used.
fn magic_vars(host: &Host) -> Vec<(String, Value)> {
    let short = host.name.split('.').next().unwrap_or(&host.name);
    let mut group_names: Vec<&String> = host
        .groups
        .iter()
        .filter(|g| *g != "all" && *g != "ungrouped")
        .collect();
    group_names.sort();
    vec![
        (
            "inventory_hostname".to_string(),
            Value::from(host.name.clone()),
        ),
        ("inventory_hostname_short".to_string(), Value::from(short)),
        ("group_names".to_string(), serde_json::json!(group_names)),
    ]
}

/// How deep templated variables may refer to one another: deeper chains are refused (each
/// level is a recursion, and tens of thousands would overflow the stack).
const MAX_VAR_DEPTH: usize = 100;

struct Resolver<'p> {
    playbook: &'p Playbook,
    host: &'p str,
    slots: BTreeMap<String, Slot<'p>>,
    /// Variables being rendered, to catch loops.
    stack: Vec<String>,
}

impl Resolver<'_> {
    fn resolve(&mut self, name: &str) -> Result<(), InputError> {
        if matches!(self.slots.get(name), None | Some(Slot::Ready(_))) {
            return Ok(());
        }
        if let Some(start) = self.stack.iter().position(|n| n == name) {
            let mut cycle = self.stack[start..].to_vec();
            cycle.push(name.to_string());
            let mut error = InputError::new(format!(
                "variables refer to each other in a loop: {}",
                cycle.join(" -> ")
            ))
            .host(self.host)
            .hint("a templated variable may not use itself, directly or through others");
            if let Some(Slot::Play(var)) = self.slots.get(name) {
                error.pos = Some(var.pos.clone());
            }
            return Err(error);
        }
        if self.stack.len() >= MAX_VAR_DEPTH {
            let mut error = InputError::new(format!(
                "variables refer to each other more than {MAX_VAR_DEPTH} deep (from {} to {name})",
                self.stack[0]
            ))
            .host(self.host)
            .hint("render long chains of variables in fewer steps");
            if let Some(Slot::Play(var)) = self.slots.get(name) {
                error.pos = Some(var.pos.clone());
            }
            return Err(error);
        }
        self.stack.push(name.to_string());
        let mentioned = match &self.slots[name] {
            Slot::Play(var) => mentioned_in_var(&var.value),
            Slot::Foreign(value) => mentioned_in_value(value),
            Slot::Ready(_) => BTreeSet::new(),
        };
        for other in &mentioned {
            self.resolve(other)?;
        }
        // Only the variables it mentions: cheaper than the whole context per variable.
        let mut context = tera::Context::new();
        for other in &mentioned {
            if let Some(Slot::Ready(value)) = self.slots.get(other) {
                context.insert(other.as_str(), value);
            }
        }
        let rendered = match &self.slots[name] {
            Slot::Play(var) => self.render_var(&var.value, &context)?,
            Slot::Foreign(value) => self.render_foreign(name, value, &context)?,
            Slot::Ready(value) => value.clone(),
        };
        self.slots.insert(name.to_string(), Slot::Ready(rendered));
        self.stack.pop();
        Ok(())
    }

    fn render_var(&self, value: &VarValue, context: &tera::Context) -> Result<Value, InputError> {
        Ok(match value {
            VarValue::Plain(value) => value.clone(),
            VarValue::Text(text) => match &text.template {
                Some(template) => Value::String(
                    self.playbook
                        .templates
                        .render(template, context, self.host)?,
                ),
                None => Value::String(text.raw.clone()),
            },
            VarValue::List(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.render_var(item, context))
                    .collect::<Result<_, _>>()?,
            ),
            VarValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_var(v, context)?)))
                    .collect::<Result<_, InputError>>()?,
            ),
        })
    }

    fn render_foreign(
        &self,
        name: &str,
        value: &Value,
        context: &tera::Context,
    ) -> Result<Value, InputError> {
        Ok(match value {
            Value::String(text) if is_template(text) => {
                let label = format!("variable `{name}` (inventory or -e)");
                Value::String(render_one_off(text, context, &label, self.host)?)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.render_foreign(name, item, context))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_foreign(name, v, context)?)))
                    .collect::<Result<_, InputError>>()?,
            ),
            other => other.clone(),
        })
    }
}

fn mentioned_in_var(value: &VarValue) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    fn walk(value: &VarValue, names: &mut BTreeSet<String>) {
        match value {
            VarValue::Plain(_) => {}
            VarValue::Text(text) => {
                names.extend(identifiers(&text.raw).into_iter().map(|(n, _, _)| n))
            }
            VarValue::List(items) => items.iter().for_each(|i| walk(i, names)),
            VarValue::Map(entries) => entries.iter().for_each(|(_, v)| walk(v, names)),
        }
    }
    walk(value, &mut names);
    names
}

fn mentioned_in_value(value: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    fn walk(value: &Value, names: &mut BTreeSet<String>) {
        match value {
            Value::String(text) => names.extend(identifiers(text).into_iter().map(|(n, _, _)| n)),
            Value::Array(items) => items.iter().for_each(|i| walk(i, names)),
            Value::Object(map) => map.values().for_each(|v| walk(v, names)),
            _ => {}
        }
    }
    walk(value, &mut names);
    names
}
