//! The end-to-end suite as one test binary: one module per area, so the
//! server, the agent and the report service link once instead of once per
//! file. The shared harness is the crate's library (`rampart_tests`).
//!
//! Run one area with a filter on its module path, e.g.
//! `cargo test -p rampart-tests --test main faults_broker::`. Every test has
//! its own database and AMQP namespace, so the areas share the process
//! without sharing state; the fault scenarios take turns process-wide
//! (`faults::take_turn`).
//!
//! `shutdown.rs` is a binary of its own (its top says why): it installs a
//! process-wide log subscriber and records every error event the process
//! logs.

mod abuse_api;
mod abuse_hierarchy;
mod abuse_messages;
mod abuse_registration;
mod activity;
mod agent_identities;
mod api;
mod broker_admin;
mod broker_handle;
mod broker_users;
mod console;
mod consolidated_list;
mod faults_broker;
mod faults_crash;
mod faults_database;
mod faults_delivery;
mod faults_multi_site;
mod fleet;
mod hierarchy;
mod hierarchy_replication;
mod hierarchy_trust;
mod idle_pool;
mod inbox;
mod mail;
mod multi_site;
mod multi_site_departure;
mod multi_site_security;
mod operators;
mod publisher;
mod replication;
mod replication_lanes;
mod report_access;
mod report_scale;
mod reports;
mod scheduled_reports;
mod schemas;
mod signed_commands;
mod tls;
