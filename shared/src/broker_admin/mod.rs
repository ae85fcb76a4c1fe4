//! Broker administration through RabbitMQ's management HTTP API.
//!
//! Rampart gives every process its own broker user (see `docs/security.md`);
//! this module is the one place that creates those users, sets what each may
//! do, and closes their connections. A tour:
//!
//! * [`ManagementClient`] (`client.rs`): one authenticated HTTP client of the
//!   management API, every call bounded by a timeout, every failure an
//!   [`AdminError`] that says which call failed, where, and why.
//! * `users.rs`: users (create with a generated password, tags, delete).
//! * `permissions.rs`: `configure`/`write`/`read` regexes per vhost, and
//!   topic permissions (routing-key regexes per exchange).
//! * `connections.rs`: a user's open connections, and closing them.
//! * `overview.rs`: the broker's version and plugins, vhost checks, and
//!   the node's memory, file descriptors and queues.
//! * `shovels.rs`: dynamic shovels (the links between a site's broker and
//!   its master's), their status, and queue depths.
//! * [`grants`]: what each kind of Rampart process may do on a namespace,
//!   as permissions anchored on the namespace's names, and [`grants::provision`]
//!   that creates a user with them.
//! * [`settings`]: the `<Broker><Management>` section of `server.xml` and the
//!   administrator's credentials file.
//!
//! No password is ever logged: passwords travel as [`Secret`](crate::Secret)s.

mod client;
mod connections;
mod error;
pub mod grants;
mod overview;
mod permissions;
pub mod settings;
mod shovels;
mod users;

pub use client::{ManagementClient, DEFAULT_TIMEOUT};
pub use connections::BrokerConnection;
pub use error::{AdminError, Result};
pub use overview::{NodeUse, Overview};
pub use permissions::{Permissions, TopicPermissions};
pub use shovels::{without_credentials, QueueFlow, ShovelDefinition, ShovelStatus};
pub use users::{generate_password, BrokerUser, NewUser};
