//! Wire contracts and plumbing shared by every Rampart service.
//!
//! A tour of the crate:
//!
//! * [`envelope`]: the versioned JSON envelope every message travels in, and
//!   the checks a consumer runs before it trusts one.
//! * [`compression`]: large bodies (replication batches) travel LZ4-compressed.
//! * [`messages`]: the message kinds and their bodies (agents <-> site).
//! * `family`: the `message_family!` table each message family is declared
//!   with (kind, body, producer and consumer, once).
//! * [`enrolment`]: how an agent process enrols on its site (token, request,
//!   the identity it is given).
//! * [`hierarchy`]: master <-> slave commands, reports and registration.
//! * [`replication`]: the slave -> master change stream and its acks.
//! * [`report`]: events for the report service, the reports and their formats.
//! * [`topology`]: every AMQP name (exchanges, queues, routing keys) and the
//!   declaration of them. No service spells a queue name by hand.
//! * [`amqp`]: the broker connection, confirmed publishing, and the batching
//!   consumer loop that acks only after a handler has committed.
//! * [`broker_admin`]: RabbitMQ's management API (users, permissions, topic
//!   permissions, connections) and the broker user each Rampart process gets.
//! * [`config`]: strict XML loading (quick-xml + serde) with errors that name
//!   the element at fault.
//! * [`service_config`]: the `<Database>`, `<Broker>`, `<Api>` and `<Log>`
//!   sections every service's XML file shares, checked once.
//! * [`db`]: the PostgreSQL pool with sane timeouts and the migration runner.
//! * [`license`]: Ed25519-signed license keys (seats + expiry).
//! * [`signing`]: HMAC-SHA256 signatures of message bodies.
//! * [`site_key`]: the site's Ed25519 seals on the commands it sends its
//!   endpoints, with an expiry.
//! * [`site_link`]: what a master and a slave with a broker of its own
//!   exchange at registration to link their brokers.
//! * [`process`]: a service's `main`: `check-config`, logging, serving until
//!   a signal, exit codes.
//! * [`telemetry`] and [`shutdown`]: logging setup and the one shutdown path.

pub mod amqp;
pub mod broker_admin;
pub mod compression;
pub mod config;
pub mod db;
pub mod enrolment;
pub mod envelope;
mod family;
pub mod hierarchy;
pub mod license;
pub mod messages;
pub mod process;
pub mod replication;
pub mod report;
pub mod secret;
pub mod service_config;
pub mod shutdown;
pub mod signing;
pub mod site_key;
pub mod site_link;
pub mod telemetry;
pub mod tls;
pub mod topology;

pub use envelope::Envelope;
pub use secret::Secret;
pub use shutdown::Shutdown;
