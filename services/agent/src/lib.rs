//! `rampart-agent`: one process that simulates a whole fleet of endpoint
//! agents (thousands of computers) over one broker connection. It talks to
//! a Rampart site server only through RabbitMQ, with the message types of
//! `rampart_shared::messages` and the names of `rampart_shared::topology`.
//!
//! A tour of the crate:
//!
//! * [`settings`]: the command line and the validated [`AgentSettings`].
//! * [`computer`]: one simulated computer, generated deterministically from
//!   the fleet's name, seed and index, and the heartbeat it reports.
//! * [`fleet`]: the state of every computer and what happens to it over
//!   time: heartbeat rounds, real-time detections, scans (timers in one
//!   heap, not a task per endpoint), policies, deployments. Pure logic,
//!   unit-tested without a broker or a clock.
//! * [`commands`]: the consumer side: decodes the commands of this
//!   process's queue and hands them to the fleet loop.
//! * [`trust`]: the site's seal on every command, its expiry, and the
//!   memory of accepted commands that refuses replays; refusals counted.
//! * [`identity`]: enrolment on the site with a one-time token, and the
//!   identity file (broker user, queue, site key) later runs reuse.
//! * [`outbox`]: batches of confirmed publishes to the site exchange, with
//!   retry of events and de-duplicated heartbeats.
//! * [`run()`]: the wiring: connect, declare, consume, one loop that ticks.

pub mod commands;
pub mod computer;
pub mod fleet;
pub mod identity;
pub mod outbox;
pub mod run;
pub mod settings;
pub mod trust;

pub use run::{run, run_with};
pub use settings::AgentSettings;
