//! The measured scenarios. Each takes the running stack and returns what it
//! measured; none asserts a speed.
//!
//! * [`replication`]: throughput (1M computers from a standing start) and
//!   the backlog drain (an hour of detections, live traffic going on).
//! * [`traffic`]: steady live updates and their replication lag.
//! * [`fanout`]: a master policy to N slaves.
//! * [`report`]: the consolidated security-status report.
//! * [`agent`]: the memory of an agent simulating many computers.

pub mod agent;
pub mod fanout;
pub mod replication;
pub mod report;
pub mod traffic;
