//! The broker's raw limits: persistent publishes with confirms into a
//! scratch quorum queue, pipelined and one at a time, the publish -> consume
//! round trip, then the broker's own fan-out ([`crate::broker_fanout`]). The
//! scratch queue is deleted whatever happened.

use std::{collections::VecDeque, time::Instant};

use anyhow::{ensure, Context};
use futures_util::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions, QueuePurgeOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
    BasicProperties, Channel, PublisherConfirm,
};
use rampart_shared::{
    amqp::{bounded, close_channel, Broker, BROKER_TIMEOUT},
    Secret,
};

use super::{rate, LimitsPlan};
use crate::{
    broker_fanout::{self, BrokerFanout},
    confirms::{confirmed, persistent},
    stats::Percentiles,
};

/// Confirms outstanding at most while publishing pipelined.
const CONFIRM_WINDOW: usize = 1000;
/// Publishes measured one at a time at most: each waits for a quorum
/// commit, so more only makes the run longer.
const SERIAL_MESSAGES_MAX: u64 = 2000;

pub(super) struct BrokerRates {
    pub pipelined_per_s: f64,
    pub serial_per_s: f64,
    pub round_trip: Percentiles,
    pub fanout: Option<BrokerFanout>,
}

/// Declares the scratch queue, measures, and deletes it whatever happened.
pub(super) async fn measure_broker(plan: &LimitsPlan) -> anyhow::Result<BrokerRates> {
    let broker = Broker::connect(Secret::new(plan.amqp_url.clone()), "rampart-bench-limits")
        .await
        .context("Failed to connect to the broker")?;
    let queue = format!("{}.raw_limits", plan.namespace);
    let measured = broker_rates(&broker, &queue, plan).await;
    let deleted = delete_queue(&broker, &queue).await;
    broker.close().await;
    let rates = measured?;
    deleted?;
    Ok(rates)
}

async fn broker_rates(broker: &Broker, queue: &str, plan: &LimitsPlan) -> anyhow::Result<BrokerRates> {
    let publishing = broker.channel().await?;
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    bounded(
        "queue.declare",
        publishing.queue_declare(queue.into(), QueueDeclareOptions { durable: true, ..Default::default() }, quorum),
    )
    .await
    .context("Failed to declare the raw limits queue")?;
    bounded("confirm.select", publishing.confirm_select(ConfirmSelectOptions::default())).await?;
    let body = vec![b'x'; plan.message_bytes];

    let started = Instant::now();
    let mut outstanding = VecDeque::with_capacity(CONFIRM_WINDOW);
    for _ in 0..plan.messages {
        if outstanding.len() == CONFIRM_WINDOW {
            if let Some(oldest) = outstanding.pop_front() {
                confirmed(oldest).await?;
            }
        }
        outstanding.push_back(publish(&publishing, queue, &body, persistent()).await?);
    }
    while let Some(confirm) = outstanding.pop_front() {
        confirmed(confirm).await?;
    }
    let pipelined_per_s = rate("Measured pipelined publishes with confirms.", plan.messages, started.elapsed());
    bounded("queue.purge", publishing.queue_purge(queue.into(), QueuePurgeOptions::default())).await?;

    let serial = plan.messages.min(SERIAL_MESSAGES_MAX);
    let started = Instant::now();
    for _ in 0..serial {
        confirmed(publish(&publishing, queue, &body, persistent()).await?).await?;
    }
    let serial_per_s = rate("Measured one-at-a-time publishes with confirms.", serial, started.elapsed());
    bounded("queue.purge", publishing.queue_purge(queue.into(), QueuePurgeOptions::default())).await?;

    let round_trip = round_trips(broker, &publishing, queue, &body, plan.round_trips).await?;
    close_channel(&publishing, "done").await?;
    let fanout = match plan.fanout_queues {
        0 => None,
        queues => Some(
            broker_fanout::measure(
                broker,
                &plan.namespace,
                queues,
                plan.fanout_rounds,
                &body,
                &plan.amqp_url,
                &plan.database_url,
            )
            .await?,
        ),
    };
    Ok(BrokerRates { pipelined_per_s, serial_per_s, round_trip, fanout })
}

/// Publishes one message and consumes it, `count` times, on an empty queue.
async fn round_trips(
    broker: &Broker,
    publishing: &Channel,
    queue: &str,
    body: &[u8],
    count: u64,
) -> anyhow::Result<Percentiles> {
    let consuming = broker.channel().await?;
    let mut consumer = bounded(
        "basic.consume",
        consuming.basic_consume(
            queue.into(),
            "rampart-bench-limits".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .context("Failed to consume the raw limits queue")?;
    let mut samples = Vec::with_capacity(count as usize);
    for n in 0..count {
        let id = ShortString::from(n.to_string());
        let started = Instant::now();
        confirmed(publish(publishing, queue, body, persistent().with_message_id(id.clone())).await?).await?;
        let delivery = match tokio::time::timeout(BROKER_TIMEOUT, consumer.next()).await {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(Some(Err(e))) => return Err(e).context("The raw limits consumer failed"),
            Ok(None) => anyhow::bail!("The broker cancelled the raw limits consumer."),
            Err(_) => {
                anyhow::bail!("No delivery from the raw limits queue within {BROKER_TIMEOUT:?}.")
            }
        };
        ensure!(
            delivery.properties.message_id().as_ref() == Some(&id),
            "The raw limits queue delivered a stale message."
        );
        bounded("basic.ack", delivery.ack(BasicAckOptions::default())).await?;
        samples.push(started.elapsed());
    }
    let round_trip = Percentiles::of(&samples).context("No round trip was measured")?;
    tracing::info!(
        count = round_trip.count,
        p50_ms = round_trip.p50_ms,
        p99_ms = round_trip.p99_ms,
        "Measured publish -> consume round trips."
    );
    close_channel(&consuming, "done").await?;
    Ok(round_trip)
}

/// Publishes to `queue` through the default exchange, mandatory so a
/// missing queue shows as a returned message.
async fn publish(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<PublisherConfirm> {
    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
    Ok(bounded("basic.publish", channel.basic_publish("".into(), queue.into(), options, body, properties)).await?)
}

/// Deletes the scratch queue on a fresh channel (the measuring ones may be
/// closed by an error).
async fn delete_queue(broker: &Broker, queue: &str) -> anyhow::Result<()> {
    let channel = broker.channel().await?;
    bounded("queue.delete", channel.queue_delete(queue.into(), QueueDeleteOptions::default()))
        .await
        .with_context(|| format!("Failed to delete the raw limits queue {queue}"))?;
    let _ = close_channel(&channel, "done").await;
    Ok(())
}
