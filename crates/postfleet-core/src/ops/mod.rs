//! Fleet operations on running instances: the scripts for status, queues and logs, and the
//! readers of what they print. One round trip per host (two for a confirmed purge).

pub mod logs;
pub mod queue;
pub mod status;
