//! Every AMQP name Rampart uses, and their declaration.
//!
//! All names start with a namespace (default `rampart`) so several stacks or
//! test runs share one broker without seeing each other. Operators watch these
//! names in the RabbitMQ management UI; `docs/protocol.md` lists them.
//!
//! | exchange            | routing key                               | queue                              |
//! |---------------------|-------------------------------------------|------------------------------------|
//! | `<ns>.site`         | `site.<instance>.<kind>`                  | `<ns>.site.<instance>.inbox`       |
//! | `<ns>.agents`       | `site.<instance>.endpoint.<endpoint>`     | `<ns>.agents.<instance>.<agent>`   |
//! | `<ns>.commands`     | `slave.<slave_id>` / `slave.all`          | `<ns>.slave.<slave_id>.commands`   |
//! | `<ns>.replication`  | `slave.<slave_id>`                        | `<ns>.master.replication`          |
//! | `<ns>.replication`  | `slave.<slave_id>.live`                   | `<ns>.master.replication.live`     |
//! | `<ns>.status`       | `slave.<slave_id>.<kind>`                 | `<ns>.master.status`               |
//! | `<ns>.events`       | `report.<kind>`                           | `<ns>.report.events`               |
//! | `<ns>.dlx`          | the source queue's name                   | `<queue>.parking`                  |

use lapin::{
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable, ShortString},
    Channel, ExchangeKind,
};

use crate::replication::Lane;

/// How many times a quorum queue redelivers a message before dead-lettering
/// it. RabbitMQ 3.10 sets no limit by default, so a poison message would loop.
pub const DELIVERY_LIMIT: i64 = 20;

/// A validated identifier usable inside AMQP names and routing keys:
/// lowercase ASCII letters, digits, `-` and `_`, 1 to 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct NameSegment(String);

impl NameSegment {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.len() > 64 {
            return Err(format!("'{value}' must be 1 to 64 characters long"));
        }
        if let Some(bad) =
            value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(format!("'{value}' contains '{bad}': use lowercase letters, digits, '-' and '_' only"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NameSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for NameSegment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(s.trim()).map_err(serde::de::Error::custom)
    }
}

/// The names of one namespace. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    ns: String,
}

impl Topology {
    pub fn new(namespace: &NameSegment) -> Self {
        Self { ns: namespace.as_str().to_owned() }
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    // Exchanges.
    pub fn site_exchange(&self) -> String {
        format!("{}.site", self.ns)
    }
    pub fn agents_exchange(&self) -> String {
        format!("{}.agents", self.ns)
    }
    pub fn commands_exchange(&self) -> String {
        format!("{}.commands", self.ns)
    }
    pub fn replication_exchange(&self) -> String {
        format!("{}.replication", self.ns)
    }
    pub fn status_exchange(&self) -> String {
        format!("{}.status", self.ns)
    }
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.ns)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.ns)
    }

    fn all_exchanges(&self) -> [String; 7] {
        [
            self.site_exchange(),
            self.agents_exchange(),
            self.commands_exchange(),
            self.replication_exchange(),
            self.status_exchange(),
            self.events_exchange(),
            self.dead_letter_exchange(),
        ]
    }

    // Queues.
    /// Where a site server receives its agents' messages.
    pub fn site_inbox(&self, instance: &str) -> String {
        format!("{}.site.{instance}.inbox", self.ns)
    }
    /// One agent process's command queue (it simulates many endpoints).
    pub fn agent_queue(&self, instance: &str, agent: &str) -> String {
        format!("{}.agents.{instance}.{agent}", self.ns)
    }
    /// Where one slave receives the master's commands.
    pub fn slave_commands_queue(&self, slave: &str) -> String {
        format!("{}.slave.{slave}.commands", self.ns)
    }
    /// On a slave's own broker: its status messages waiting for the link
    /// to the master's broker (`docs/multi-site.md`).
    pub fn link_status_queue(&self, slave: &str) -> String {
        format!("{}.link.{slave}.status", self.ns)
    }
    /// On a slave's own broker: its replication batches waiting for the link.
    pub fn link_replication_queue(&self, slave: &str) -> String {
        format!("{}.link.{slave}.replication", self.ns)
    }
    /// The name of the shovel on a slave's broker that carries `what`
    /// (`commands`, `status`, `replication`) between it and the master's.
    pub fn link_shovel(&self, slave: &str, what: &str) -> String {
        format!("{}.link.{slave}.{what}", self.ns)
    }
    /// The broker user a slave's links use on the master's broker.
    pub fn link_user(&self, slave: &str) -> String {
        format!("{}.link.{slave}", self.ns)
    }
    /// Where the master receives every slave's receipts and heartbeats.
    pub fn master_status_queue(&self) -> String {
        format!("{}.master.status", self.ns)
    }
    /// Where the master receives the slaves' bulk replication batches
    /// (snapshots and backlogs: every batch but a caught-up one).
    pub fn master_replication_queue(&self) -> String {
        format!("{}.master.replication", self.ns)
    }
    /// Where the master receives the slaves' caught-up batches, apart from
    /// the bulk so that a slave draining a backlog does not hold up the
    /// fresh changes of the others ([`crate::replication::Lane`]).
    pub fn master_live_replication_queue(&self) -> String {
        format!("{}.master.replication.live", self.ns)
    }
    /// Where the report service receives a master's aggregated events.
    pub fn report_events_queue(&self) -> String {
        format!("{}.report.events", self.ns)
    }
    /// Where messages refused by `queue` are parked for an operator.
    pub fn parking_queue(queue: &str) -> String {
        format!("{queue}.parking")
    }

    // Routing keys.
    /// Key of an agent message of `kind` for site `instance`.
    pub fn site_key(instance: &str, kind: &str) -> String {
        format!("site.{instance}.{kind}")
    }
    /// Binding that catches every agent message for `instance`.
    pub fn site_binding(instance: &str) -> String {
        format!("site.{instance}.#")
    }
    /// Key of a command for one endpoint.
    pub fn endpoint_key(instance: &str, endpoint: &str) -> String {
        format!("site.{instance}.endpoint.{endpoint}")
    }
    /// Key of a command for one slave.
    pub fn slave_key(slave: &str) -> String {
        format!("slave.{slave}")
    }
    /// Key of a command for every slave.
    pub const ALL_SLAVES_KEY: &'static str = "slave.all";
    /// Key of a status message of `kind` from `slave`.
    pub fn status_key(slave: &str, kind: &str) -> String {
        format!("slave.{slave}.{kind}")
    }
    /// The slave a `slave.<id>[.<kind>]` routing key (status, replication)
    /// names, if it has that shape.
    pub fn slave_of_key(routing_key: &str) -> Option<&str> {
        routing_key.strip_prefix("slave.")?.split('.').next().filter(|s| !s.is_empty())
    }
    /// Key of a replication batch of `slave` in `lane`: `slave.<id>` for
    /// the bulk, `slave.<id>.live` for caught-up batches.
    pub fn replication_key(slave: &str, lane: Lane) -> String {
        match lane {
            Lane::Bulk => Self::slave_key(slave),
            Lane::Live => format!("slave.{slave}.live"),
        }
    }
    /// The lane of a replication batch published with `routing_key`.
    pub fn replication_lane_of_key(routing_key: &str) -> Lane {
        if routing_key.ends_with(".live") {
            Lane::Live
        } else {
            Lane::Bulk
        }
    }
    /// Binding that catches every slave's bulk replication batches.
    pub const REPLICATION_BINDING: &'static str = "slave.*";
    /// Binding that catches every slave's caught-up replication batches.
    pub const LIVE_REPLICATION_BINDING: &'static str = "slave.*.live";
    /// Key of an event of `kind` for the report service (kinds start with `report.`).
    pub fn event_key(kind: &str) -> String {
        kind.to_owned()
    }
    /// Binding that catches every event for the report service.
    pub const REPORT_BINDING: &'static str = "report.#";
    /// Binding that catches every slave's status messages.
    pub const STATUS_BINDING: &'static str = "slave.#";
    /// Binding that catches every endpoint command of `instance`.
    pub fn endpoints_binding(instance: &str) -> String {
        format!("site.{instance}.endpoint.*")
    }
}

/// Declares every exchange of the namespace (idempotent).
pub async fn declare_exchanges(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    for exchange in topology.all_exchanges() {
        channel
            .exchange_declare(
                ShortString::from(exchange),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Makes sure every exchange of the namespace exists, for a process whose
/// broker user may not declare exchanges (an agent, the report service):
/// each is checked with a passive declare, which needs no `configure`
/// permission, and only a missing one is declared (refused, and retried by
/// the caller, until a server has declared it).
pub async fn ensure_exchanges(broker: &crate::amqp::Broker, topology: &Topology) -> crate::amqp::Result<()> {
    use crate::amqp::{bounded, close_channel};
    let passive = ExchangeDeclareOptions { passive: true, durable: true, ..Default::default() };
    let mut channel = broker.channel().await?;
    for exchange in topology.all_exchanges() {
        let name = ShortString::from(exchange.clone());
        let checked = bounded(
            "exchange.declare",
            channel.exchange_declare(name.clone(), ExchangeKind::Topic, passive, FieldTable::default()),
        )
        .await;
        if checked.is_err() {
            // A failed passive declare closes the channel.
            channel = broker.channel().await?;
            let active = ExchangeDeclareOptions { durable: true, ..Default::default() };
            bounded(
                "exchange.declare",
                channel.exchange_declare(name, ExchangeKind::Topic, active, FieldTable::default()),
            )
            .await?;
        }
    }
    let _ = close_channel(&channel, "exchanges checked").await;
    Ok(())
}

/// Declares a durable quorum queue with its dead-letter wiring and parking
/// queue, and binds it to `exchange` with each of `bindings` (idempotent).
pub async fn declare_queue(
    channel: &Channel,
    topology: &Topology,
    queue: &str,
    exchange: &str,
    bindings: &[String],
) -> lapin::Result<()> {
    let dlx = topology.dead_letter_exchange();
    let parking = Topology::parking_queue(queue);
    channel.queue_declare(ShortString::from(parking.clone()), durable(), quorum_args(None)).await?;
    channel
        .queue_bind(
            ShortString::from(parking),
            ShortString::from(dlx.clone()),
            ShortString::from(queue.to_owned()),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel.queue_declare(ShortString::from(queue.to_owned()), durable(), quorum_args(Some((&dlx, queue)))).await?;
    for key in bindings {
        channel
            .queue_bind(
                ShortString::from(queue.to_owned()),
                ShortString::from(exchange.to_owned()),
                ShortString::from(key.clone()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Declares a durable classic queue without arguments (no delivery limit,
/// no dead-lettering: what waits there for a link to another broker must
/// never be parked, however often the link drops), bound to `exchange`
/// with each of `bindings` (idempotent; a shovel redeclares it the same way).
pub async fn declare_link_queue(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    bindings: &[String],
) -> lapin::Result<()> {
    channel.queue_declare(ShortString::from(queue.to_owned()), durable(), FieldTable::default()).await?;
    for key in bindings {
        channel
            .queue_bind(
                ShortString::from(queue.to_owned()),
                ShortString::from(exchange.to_owned()),
                ShortString::from(key.clone()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Deletes a queue and its parking queue (used on teardown and unregister).
pub async fn delete_queue(channel: &Channel, queue: &str) -> lapin::Result<()> {
    for name in [queue.to_owned(), Topology::parking_queue(queue)] {
        channel.queue_delete(ShortString::from(name), QueueDeleteOptions::default()).await?;
    }
    Ok(())
}

/// Deletes every exchange of the namespace (test teardown).
pub async fn delete_exchanges(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    for exchange in topology.all_exchanges() {
        channel.exchange_delete(ShortString::from(exchange), Default::default()).await?;
    }
    Ok(())
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

/// Quorum queue arguments; with a dead-letter target, poison messages go
/// there after [`DELIVERY_LIMIT`] tries, at least once.
fn quorum_args(dead_letter: Option<(&str, &str)>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    if let Some((dlx, routing_key)) = dead_letter {
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(routing_key.into()));
        args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
        args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    }
    args
}

#[cfg(test)]
mod tests;
