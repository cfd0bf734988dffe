//! postfleet: converge fleets of Postfix hosts (multi-instance included) over SSH.
//!
//! The shape: inputs (inventory, playbook) are parsed and rendered locally into a desired
//! state per host; each host is probed once for facts; [`plan`] is a pure function of both;
//! [`apply`] turns a plan into one remote script. I/O lives at the edges (ssh, lab, cli).

pub mod apply;
pub mod cli;
pub mod error;
pub mod facts;
pub mod fleet;
pub mod inventory;
pub mod lab;
pub mod ops;
pub mod plan;
pub mod playbook;
pub mod render;
pub mod report;
pub mod ssh;
