//! The broker's own fan-out: one persistent message to each of N quorum
//! queues, published with confirms on one channel (all at once, as the
//! outbox relay publishes), until the last of N consumers (a channel each)
//! has it, with nothing but the broker on the path. A policy's fan-out to N slaves goes through the same N queues, so
//! this is the part of it that no work on the slaves can shorten.
//!
//! Then the same rounds with the least a slave must do with a command: each
//! consumer, on its own broker connection as each slave has, commits one
//! row on its own PostgreSQL connection before it acks, and a round ends
//! when the last consumer has committed. That is the floor of a fan-out on
//! this machine: the broker's fan-out plus one durable write per slave, on
//! the same cores. The consumers' rows go to one database, or each to its
//! own schema of the shared databases the simulated slaves live in
//! ([`measure_in`]), as each slave's apply does.

use std::time::Instant;

use anyhow::{ensure, Context};
use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable, ShortString},
    Channel,
};
use rampart_shared::amqp::{
    bounded, close_channel,
    publisher::{publish_all, Outgoing},
    Broker, BROKER_TIMEOUT,
};
use rampart_shared::{db::SchemaName, Secret};
use serde::Serialize;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    confirms::{confirmed, persistent},
    stats::Percentiles,
};

/// The table each committing consumer writes one row of per round.
pub(crate) const COMMITS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS fanout_commits (queue integer, round integer, PRIMARY KEY (queue, round))";
const COMMIT_SQL: &str = "INSERT INTO fanout_commits (queue, round) VALUES ($1, $2)";

#[derive(Clone, Debug, Serialize)]
pub struct BrokerFanout {
    pub queues: usize,
    pub rounds: usize,
    /// From the first publish of a round until the last queue's consumer has
    /// its message.
    pub latency: Percentiles,
    /// The same, until the last consumer has committed a row for its
    /// message (before acking it).
    pub with_commit: Percentiles,
}

/// Where one consumer commits its rows: a database, and the schema of it
/// when the slave it stands for lives in one.
#[derive(Clone, Debug)]
pub struct CommitTarget {
    pub database_url: String,
    pub schema: Option<SchemaName>,
}

/// Declares `queues` scratch quorum queues, measures `rounds` rounds, then
/// as many with a commit per message in the database at `database_url`,
/// and deletes the queues whatever happened.
pub async fn measure(
    broker: &Broker,
    namespace: &str,
    queues: usize,
    rounds: usize,
    body: &[u8],
    amqp_url: &str,
    database_url: &str,
) -> anyhow::Result<BrokerFanout> {
    let target = CommitTarget { database_url: database_url.to_owned(), schema: None };
    let names: Vec<String> = (0..queues).map(|i| format!("{namespace}.raw_fanout_{i:03}")).collect();
    measure_in(broker, &names, rounds, body, amqp_url, &vec![target; queues]).await
}

/// [`measure`] over the queues `names`, the consumer of each committing to
/// its own target (the table is made in each target's schema).
pub async fn measure_in(
    broker: &Broker,
    names: &[String],
    rounds: usize,
    body: &[u8],
    amqp_url: &str,
    targets: &[CommitTarget],
) -> anyhow::Result<BrokerFanout> {
    let queues = names.len();
    ensure!(queues > 0 && rounds > 0, "The broker fan-out needs at least one queue and one round.");
    ensure!(targets.len() == queues, "The broker fan-out needs a commit target per queue.");
    let channel = broker.channel().await?;
    let measured = both_measurements(broker, &channel, names, rounds, body, amqp_url, targets).await;
    let mut deleted = Ok(());
    for name in names {
        let result =
            bounded("queue.delete", channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await;
        if let Err(e) = result {
            deleted = Err(e).with_context(|| format!("Failed to delete the scratch queue {name}"));
        }
    }
    let _ = close_channel(&channel, "done").await;
    let (latency, with_commit) = measured?;
    deleted?;
    tracing::info!(queues, rounds, p50_ms = latency.p50_ms, p99_ms = latency.p99_ms, "Measured the broker's fan-out.");
    tracing::info!(
        queues,
        rounds,
        p50_ms = with_commit.p50_ms,
        p99_ms = with_commit.p99_ms,
        "Measured the broker's fan-out with a commit per message."
    );
    Ok(BrokerFanout { queues, rounds, latency, with_commit })
}

async fn both_measurements(
    broker: &Broker,
    publishing: &Channel,
    names: &[String],
    rounds: usize,
    body: &[u8],
    amqp_url: &str,
    targets: &[CommitTarget],
) -> anyhow::Result<(Percentiles, Percentiles)> {
    for name in names {
        declare_quorum(publishing, name).await?;
    }
    bounded("confirm.select", publishing.confirm_select(ConfirmSelectOptions::default())).await?;
    let shared = vec![broker; names.len()];
    let latency = rounds_over(&shared, publishing, names, rounds, body, None).await?;

    let mut clients = Vec::with_capacity(names.len());
    let mut own = Vec::with_capacity(names.len());
    for (i, target) in targets.iter().enumerate() {
        let client = crate::stats::connect(&target.database_url, "the fan-out commits database").await?;
        if let Some(schema) = &target.schema {
            client.batch_execute(&format!("SET search_path = {schema}")).await?;
        }
        // Once per table: per schema, or once for a database of its own.
        if i == 0 || target.schema.is_some() {
            client.batch_execute(COMMITS_TABLE).await.context("Failed to create the fan-out commits table")?;
        }
        clients.push(client);
        own.push(Broker::connect(Secret::new(amqp_url.to_owned()), format!("rampart-bench-fanout-{i:03}")).await?);
    }
    // The raw database limits just wrote a million rows twice: the
    // checkpoint they leave due would otherwise stall some round's commits.
    crate::stats::checkpoint(&clients[0], "the fan-out commits").await;
    let with_commit =
        rounds_over(&own.iter().collect::<Vec<_>>(), publishing, names, rounds, body, Some(clients)).await;
    for broker in &own {
        broker.close().await;
    }
    Ok((latency, with_commit?))
}

/// Declares the durable quorum queue `name`.
pub(crate) async fn declare_quorum(channel: &Channel, name: &str) -> anyhow::Result<()> {
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    let options = QueueDeclareOptions { durable: true, ..Default::default() };
    bounded("queue.declare", channel.queue_declare(name.into(), options, quorum))
        .await
        .with_context(|| format!("Failed to declare the scratch queue {name}"))?;
    Ok(())
}

/// `rounds` timed rounds (after one untimed one) over consumers of `names`,
/// each on a channel of its broker in `brokers`; with `clients` (one per
/// queue) each consumer commits a row per message before acking it.
pub(crate) async fn rounds_over(
    brokers: &[&Broker],
    publishing: &Channel,
    names: &[String],
    rounds: usize,
    body: &[u8],
    clients: Option<Vec<tokio_postgres::Client>>,
) -> anyhow::Result<Percentiles> {
    // Every consumer passes on the round its message belongs to, or why it
    // could not commit it.
    let (arrived, mut arrivals) = mpsc::unbounded_channel::<Result<Option<ShortString>, String>>();
    let mut consumers = JoinSet::new();
    let mut channels = Vec::with_capacity(names.len());
    let mut clients = clients.map(Vec::into_iter);
    for (queue, (name, broker)) in names.iter().zip(brokers).enumerate() {
        let channel = broker.channel().await?;
        let mut consumer = bounded(
            "basic.consume",
            channel.basic_consume(
                name.as_str().into(),
                "rampart-bench-fanout".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .with_context(|| format!("Failed to consume the scratch queue {name}"))?;
        let client = clients.as_mut().and_then(Iterator::next);
        let arrived = arrived.clone();
        consumers.spawn(async move {
            let commit = match &client {
                Some(client) => match client.prepare(COMMIT_SQL).await {
                    Ok(statement) => Some((client, statement)),
                    Err(e) => {
                        let _ = arrived.send(Err(format!("A fan-out consumer could not prepare its commit: {e}")));
                        return;
                    }
                },
                None => None,
            };
            while let Some(Ok(delivery)) = consumer.next().await {
                let id = delivery.properties.message_id().clone();
                if let Some((client, statement)) = &commit {
                    let round: i32 = id.as_ref().and_then(|id| id.as_str().parse().ok()).unwrap_or(-1);
                    if let Err(e) = client.execute(statement, &[&(queue as i32), &round]).await {
                        let _ = arrived.send(Err(format!("A fan-out consumer could not commit: {e}")));
                        break;
                    }
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
                if arrived.send(Ok(id)).is_err() {
                    break;
                }
            }
        });
        channels.push(channel);
    }

    // Round 0 is not timed: it wakes every queue, as the slaves' queues are
    // awake by the time a policy goes out.
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let id = ShortString::from(round.to_string());
        let messages = round_messages(names, body, &id);
        let started = Instant::now();
        for confirm in publish_all(publishing, &messages).await? {
            confirmed(confirm).await?;
        }
        for _ in names {
            let id_seen = tokio::time::timeout(BROKER_TIMEOUT, arrivals.recv())
                .await
                .map_err(|_| anyhow::anyhow!("A fan-out message did not arrive within {BROKER_TIMEOUT:?}."))?
                .context("The fan-out consumers stopped.")?
                .map_err(anyhow::Error::msg)?;
            ensure!(id_seen.as_ref() == Some(&id), "A scratch queue delivered a message of another round.");
        }
        if round > 0 {
            samples.push(started.elapsed());
        }
    }
    // Closing the channels ends the consumers before their queues go.
    for channel in &channels {
        close_channel(channel, "done").await?;
    }
    consumers.abort_all();
    Percentiles::of(&samples).context("No fan-out round was measured")
}

/// One message of round `id` to each queue, through the default exchange.
fn round_messages(names: &[String], body: &[u8], id: &ShortString) -> Vec<Outgoing> {
    names
        .iter()
        .map(|name| Outgoing {
            exchange: String::new(),
            routing_key: name.clone(),
            payload: body.to_vec(),
            properties: persistent().with_message_id(id.clone()),
        })
        .collect()
}
