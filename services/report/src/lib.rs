//! The Rampart report service.
//!
//! It keeps its own database, fed by the aggregated events a master
//! publishes on `<ns>.events` after each replication batch, and serves
//! consolidated reports over every slave (the master's API forwards to it).
//!
//! * [`config`]: `report.xml` into validated [`config::Settings`].
//! * [`startup`]: [`startup::Application`] builds and runs the service.
//! * [`state`]: what the API handlers share.
//! * [`events`]: the consumer: signed events into the read model.
//! * [`read_model`]: applying events idempotently, reading them back.
//! * [`api`]: the HTTP API (reports as JSON, CSV, HTML or text).
//! * [`auth`], [`operators`]: who may read: the master's forwarding, or
//!   the master's operators with their own tokens.

pub mod api;
pub mod auth;
pub mod config;
pub mod events;
pub mod migrations;
pub mod operators;
pub mod read_model;
pub mod startup;
pub mod state;
