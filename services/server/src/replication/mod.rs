//! Replication slave -> master.
//!
//! * [`changes`]: the slave's change stream, read in an order that is safe
//!   under concurrent writers, and the checksums of a verification.
//! * [`replicator`]: the slave ships that stream batch by batch and moves
//!   its watermark only when the master has applied.
//! * [`apply`]: the master applies each batch in one transaction (upserts
//!   from arrays keeping the newer row, watermark, answer).
//! * [`verify`]: the master compares its copy with the slave's checksums.
//! * [`requests`]: replicate now, verify and the answers to batches, as
//!   they travel on the slave's command queue.
//! * [`rows_behind`]: how far behind the master a slave's heartbeats say
//!   it is, counted now and then.
//!
//! The wire contract is [`rampart_shared::replication`]; the design and its
//! reasons are in `docs/architecture.md`.

pub mod apply;
pub mod changes;
pub mod replicator;
pub mod requests;
pub mod rows_behind;
pub mod verify;
