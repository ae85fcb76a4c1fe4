//! The Rampart benchmark.
//!
//! It measures, on this machine and in one run, the limits of the local
//! PostgreSQL and RabbitMQ (binary COPY and UNNEST upsert into the master's
//! `replica_rows`, publishes with confirms, round trips), then the system
//! against them: replication throughput and lag, backlog drain, fan-out,
//! report latency and memory. The master and the agent are the real
//! binaries as child processes; the slaves are real servers, many in this
//! process, each with its own database and queues.
//!
//! * [`plan`]: the sizes of a full or quick run.
//! * [`run`]: the run, from setup to teardown.
//! * [`limits`]: the raw limits.
//! * [`master`]: the master process.
//! * [`fleet`]: the slaves.
//! * [`schema_fleet`]: slaves many to a database, a schema each (the
//!   1,000-slave fan-out).
//! * [`site_floor`]: the broker's own fan-out through the links, the
//!   multi-site path's floor.
//! * [`sites`]: the multi-site path's small hierarchies, on one broker or
//!   a broker node per site.
//! * [`scenarios`]: what is measured.
//! * [`scale`]: a master holding millions of computers, and its cost curve.
//! * [`results`]: the table and the JSON file; [`table`]: its lines.

pub mod broker_fanout;
mod confirms;
pub mod fleet;
pub mod limits;
pub mod master;
pub mod plan;
pub mod results;
pub mod rows;
pub mod run;
pub mod scale;
pub mod scenarios;
pub mod schema_fleet;
pub mod site_floor;
pub mod sites;
pub mod stats;
pub mod table;
