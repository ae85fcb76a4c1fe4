//! The broker's own fan-out: one persistent message to each of N quorum
//! queues, published with confirms on one channel, until the last of N
//! consumers (a channel each) has it, with nothing but the broker on the
//! path. A policy's fan-out to N slaves goes through the same N queues, so
//! this is the part of it that no work on the slaves can shorten.

use std::time::Instant;

use anyhow::{ensure, Context};
use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable, ShortString},
    Channel,
};
use rampart_shared::amqp::{bounded, Broker, BROKER_TIMEOUT};
use serde::Serialize;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    limits::{confirmed, persistent, publish},
    stats::Percentiles,
};

#[derive(Clone, Debug, Serialize)]
pub struct BrokerFanout {
    pub queues: usize,
    pub rounds: usize,
    /// From the first publish of a round until the last queue's consumer has
    /// its message.
    pub latency: Percentiles,
}

/// Declares `queues` scratch quorum queues, measures `rounds` rounds, and
/// deletes the queues whatever happened.
pub async fn measure(broker: &Broker, namespace: &str, queues: usize, rounds: usize, body: &[u8]) -> anyhow::Result<BrokerFanout> {
    ensure!(queues > 0 && rounds > 0, "The broker fan-out needs at least one queue and one round.");
    let names: Vec<String> = (0..queues).map(|i| format!("{namespace}.raw_fanout_{i:03}")).collect();
    let channel = broker.channel().await?;
    let measured = rounds_over(broker, &channel, &names, rounds, body).await;
    let mut deleted = Ok(());
    for name in &names {
        let result = bounded("queue.delete", channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await;
        if let Err(e) = result {
            deleted = Err(e).with_context(|| format!("Failed to delete the scratch queue {name}"));
        }
    }
    let _ = bounded("channel.close", channel.close(200, "done".into())).await;
    let latency = measured?;
    deleted?;
    tracing::info!(queues, rounds, p50_ms = latency.p50_ms, p99_ms = latency.p99_ms, "Measured the broker's fan-out.");
    Ok(BrokerFanout { queues, rounds, latency })
}

async fn rounds_over(broker: &Broker, publishing: &Channel, names: &[String], rounds: usize, body: &[u8]) -> anyhow::Result<Percentiles> {
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    for name in names {
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        bounded("queue.declare", publishing.queue_declare(name.as_str().into(), options, quorum.clone()))
            .await
            .with_context(|| format!("Failed to declare the scratch queue {name}"))?;
    }
    bounded("confirm.select", publishing.confirm_select(ConfirmSelectOptions::default())).await?;

    // Every consumer passes on the round its message belongs to.
    let (arrived, mut arrivals) = mpsc::unbounded_channel::<Option<ShortString>>();
    let mut consumers = JoinSet::new();
    let mut channels = Vec::with_capacity(names.len());
    for name in names {
        let channel = broker.channel().await?;
        let mut consumer = bounded(
            "basic.consume",
            channel.basic_consume(name.as_str().into(), "rampart-bench-fanout".into(), BasicConsumeOptions::default(), FieldTable::default()),
        )
        .await
        .with_context(|| format!("Failed to consume the scratch queue {name}"))?;
        let arrived = arrived.clone();
        consumers.spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let _ = delivery.ack(BasicAckOptions::default()).await;
                if arrived.send(delivery.properties.message_id().clone()).is_err() {
                    break;
                }
            }
        });
        channels.push(channel);
    }

    // Round 0 is not timed: it wakes every queue, as the slaves' queues
    // are awake by the time a policy goes out.
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let id = ShortString::from(round.to_string());
        let started = Instant::now();
        let mut confirms = Vec::with_capacity(names.len());
        for name in names {
            confirms.push(publish(publishing, name, body, persistent().with_message_id(id.clone())).await?);
        }
        for confirm in confirms {
            confirmed(confirm).await?;
        }
        for _ in names {
            let id_seen = tokio::time::timeout(BROKER_TIMEOUT, arrivals.recv())
                .await
                .map_err(|_| anyhow::anyhow!("A fan-out message did not arrive within {BROKER_TIMEOUT:?}."))?
                .context("The fan-out consumers stopped.")?;
            ensure!(id_seen.as_ref() == Some(&id), "A scratch queue delivered a message of another round.");
        }
        if round > 0 {
            samples.push(started.elapsed());
        }
    }
    // Closing the channels ends the consumers before their queues go.
    for channel in &channels {
        bounded("channel.close", channel.close(200, "done".into())).await?;
    }
    consumers.abort_all();
    Percentiles::of(&samples).context("No fan-out round was measured")
}
