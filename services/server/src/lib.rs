//! The Rampart management server.
//!
//! One binary for every role: a stand-alone or slave manages its site's
//! computers; a master manages slaves. A tour:
//!
//! * [`config`]: `server.xml` into validated [`config::Settings`].
//! * [`startup`]: [`startup::Application`] builds and runs one server.
//! * [`state`]: what handlers and consumers share; [`wakes`]: how a commit
//!   wakes the background task that has work.
//! * [`consumers`]: every queue this server consumes, started in one place.
//! * [`agents`]: agent identities: enrolment tokens, enrolment (a broker
//!   user and a queue per agent process), which identity owns which
//!   endpoint, revocation.
//! * [`inbox`]: the agents' messages, persisted (heartbeats, detections,
//!   discovery, task results, deployments).
//! * [`outbox`]: commands written with the change that causes them, relayed
//!   with publisher confirms.
//! * [`hierarchy`]: master and slaves: registration, fan-out of policies
//!   and tasks, receipts, unregistering.
//! * [`replication`]: slave -> master replication: the change stream, the
//!   replicator, the master's apply and verification.
//! * [`reports`]: events for the report service (master), reports on
//!   request and on a schedule (stand-alone, slave).
//! * [`refused`]: the audit of refused messages, from every consumer.
//! * [`failpoints`]: where fault tests stop a server as if it died.
//! * [`fleet`]: endpoints, groups, virtual groups and the tree of a site;
//!   a master's consolidated copy of its slaves'; status, dashboard, audit.
//! * [`policies`]: authoring, assigning and enforcing policies.
//! * [`licensing`], [`deployments`], [`security`]: domain rules.
//! * [`tasks`]: tasks on endpoints (sites) and on slaves (masters).
//! * [`owner`]: whether a policy or task is local or the master's.
//! * [`settings_store`]: operator settings (auto-deploy, e-mail).
//! * [`email_settings`]: the SMTP relay and recipients of report mail,
//!   checked and kept in the settings store.
//! * [`site_key`]: the site's command key, which seals every endpoint command.
//! * [`mail`]: sending reports by e-mail (SMTP).
//! * [`role`]: roles and the features a master does not have.
//! * [`operators`]: operator accounts and roles, API tokens, sign-in, the
//!   activity log.
//! * [`api`]: the HTTP API on port 7073; [`tls`]: its certificate, or plain HTTP.
//! * [`console`]: the web console on the same port (`/console`).

pub mod agents;
pub mod api;
pub mod config;
pub mod console;
pub mod consumers;
pub mod deployments;
pub mod email_settings;
pub mod failpoints;
pub mod fleet;
pub mod hierarchy;
pub mod inbox;
pub mod licensing;
pub mod mail;
pub mod migrations;
pub mod operators;
pub mod outbox;
pub mod owner;
pub mod policies;
pub mod refused;
pub mod replication;
pub mod reports;
pub mod role;
pub mod security;
pub mod settings_store;
pub mod site_key;
pub mod startup;
pub mod state;
pub mod tasks;
pub mod tls;
pub mod wakes;

#[cfg(test)]
mod layers;
