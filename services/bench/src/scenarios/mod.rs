//! The measured scenarios. Each takes the running stack and returns what it
//! measured; none asserts a speed.
//!
//! * [`replication`]: throughput (1M computers from a standing start) and
//!   the backlog drain (an hour of detections, live traffic going on).
//! * [`traffic`]: steady live updates and their replication lag.
//! * [`fanout`]: a master policy to N slaves.
//! * [`fanout_large`]: the same to 1,000 slaves laid out many to a
//!   database, against the floor at that width.
//! * [`report`]: the consolidated security-status report.
//! * [`agent`]: the memory of an agent simulating many computers.
//! * [`console`]: the console's pages on the loaded master.
//! * [`multi_site`]: throughput and fan-out with every site on its own
//!   broker node, against the same on one broker.

pub mod agent;
pub mod console;
pub mod fanout;
pub mod fanout_large;
pub mod multi_site;
pub mod replication;
pub mod report;
pub mod traffic;
