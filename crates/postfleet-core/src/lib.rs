//! postfleet's core: everything between the user's files and the bytes sent to a host. No
//! network, no async runtime, no unsafe; the only I/O is reading the user's input files
//! (inventory, playbook, templates, `-e @file`). The planner itself is pure.
//!
//! - inputs: [`inventory`] (hosts, groups, vars, patterns), [`playbook`] (plays, instances,
//!   templates), [`render`] (per host: the desired state, [`model`]);
//! - a host's side: [`facts`] (the read-only probe script and the parser of its output);
//! - the decision: [`plan`], a pure function of the desired state and the facts;
//! - back to the host: [`apply`] (one script per plan) and [`ops`] (status, queue, logs);
//! - shared: [`error`] (input errors with positions), [`exit`] (the exit-code contract),
//!   [`secrets`] (what is never shown), [`table`] (plain-text tables).
#![forbid(unsafe_code)]

pub mod apply;
pub mod drift;
pub mod error;
pub mod exit;
pub mod facts;
pub mod inventory;
pub mod model;
pub mod ops;
pub mod outcome;
pub mod plan;
pub mod playbook;
pub mod render;
pub mod rollout;
pub mod scripts;
pub mod secrets;
pub mod table;
