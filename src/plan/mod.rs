//! The pure planner: desired state + facts -> ordered steps with diffs. No I/O here.

pub mod desired;
