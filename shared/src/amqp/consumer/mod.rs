//! The consumer loop every service uses.
//!
//! It takes deliveries in small batches (whatever has arrived within a short
//! linger, up to a maximum), lets the handler decode each one, dead-letters
//! the ones that can never succeed (with a reason header, then acks them), and
//! hands the rest to the handler to apply in one database transaction. Only
//! after the handler returns `Ok` — its transaction committed — are the
//! deliveries acked. A handler that reports a transient failure (database
//! down) makes the loop back off and retry the same batch: it takes no new
//! deliveries meanwhile, so nothing spins and nothing is lost.
//!
//! A consumer of large messages whose apply is mostly database time
//! (replication batches) may instead apply several deliveries at once, one
//! per transaction, each acked alone after its own commit
//! ([`ConsumerSettings::concurrency`]).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    time::Duration,
};

use futures_util::{stream::FuturesUnordered, StreamExt};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::{FieldTable, ShortString},
    Channel,
};

use super::{bounded, close_channel, publisher::Publisher, AmqpError, Broker, Result};
use crate::envelope::Rejection;
use crate::shutdown::Shutdown;
use crate::topology::{self, Topology};

mod parking;
use parking::dead_letter;

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// May succeed later (database unreachable, serialization failure):
    /// back off and retry the same messages.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Will never succeed: dead-letter with this reason.
    #[error("{0}")]
    Rejected(String),
}

impl ApplyError {
    /// Sorts a failed transaction: a database that is down or busy is
    /// transient; a statement the database refuses will never succeed.
    pub fn classify(error: anyhow::Error) -> Self {
        if let Some(pg) = error.downcast_ref::<tokio_postgres::Error>() {
            if crate::db::is_transient(pg) {
                return Self::Transient(pg.to_string());
            }
            return Self::Rejected(format!("database refused the message: {pg}"));
        }
        // Pool checkout and timeouts: the database is unreachable for now.
        Self::Transient(format!("{error:#}"))
    }
}

/// Decodes and applies one kind of traffic.
pub trait BatchHandler: Send + Sync + 'static {
    type Message: Send + Sync;

    /// Turns a delivery into a trusted message, or says why it is refused.
    fn decode(&self, delivery: &Delivery) -> std::result::Result<Self::Message, Rejection>;

    /// Applies the messages in one transaction; `Ok` means committed.
    fn apply(
        &self,
        batch: &[Self::Message],
    ) -> impl std::future::Future<Output = std::result::Result<(), ApplyError>> + Send;

    /// Called after a delivery was dead-lettered, to record it where an
    /// operator looks (beyond the log line and counter every refusal gets).
    fn refused(&self, _delivery: &Delivery, _reason: &str) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// Counters an operator reads from `/metrics`.
#[derive(Debug, Default)]
pub struct ConsumerMetrics {
    pub applied: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
}

/// Tuning of one consumer.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub queue: String,
    pub dead_letter_exchange: String,
    /// Unacked deliveries the broker may push at once.
    pub prefetch: u16,
    /// Most messages applied in one transaction.
    pub batch_max: usize,
    /// How long to wait for more deliveries before applying a partial batch;
    /// zero takes only what has already arrived.
    pub linger: Duration,
    /// Deliveries applied at once, each alone in its own transaction (and
    /// acked alone); 1 applies batches one after the other. Above 1 the
    /// handler must make concurrent applies of related messages safe (the
    /// replication apply locks the slave's row, so two batches of one slave
    /// still apply one after the other).
    pub concurrency: usize,
    /// Declared (idempotently) before every consume, so a queue deleted
    /// under a running consumer comes back; `None` for a queue that another
    /// service owns (a slave's command queue belongs to its master).
    pub declare: Option<QueueSpec>,
}

/// How to declare a consumed queue: the exchange and keys it is bound with.
#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub topology: Topology,
    pub exchange: String,
    pub bindings: Vec<String>,
}

/// First and longest wait before a consumer reconnects.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// Consumes `settings.queue` until shutdown, reconnecting after broker
/// failures with a capped back-off, cut short when the broker handle
/// reconnects for another of its users.
pub async fn run<H: BatchHandler>(
    broker: Arc<Broker>,
    settings: ConsumerSettings,
    handler: Arc<H>,
    metrics: Arc<ConsumerMetrics>,
    shutdown: Shutdown,
) {
    let dead_letters = Publisher::new(broker.clone());
    let mut backoff = FIRST_RETRY;
    while !shutdown.is_triggered() {
        let mut consumed = false;
        match consume(&broker, &settings, &*handler, &metrics, &dead_letters, &shutdown, &mut consumed).await {
            Ok(()) => break,
            Err(e) => {
                // A consumer that was running starts its back-off afresh:
                // an earlier outage must not leave it waiting 10 s.
                if consumed {
                    backoff = FIRST_RETRY;
                }
                tracing::warn!(queue = %settings.queue, error = %e, retry_in = ?backoff, "Consumer lost its channel; reconnecting.");
                // Another user of the broker handle reconnecting means the
                // broker is back: retry then rather than sleep the rest out.
                tokio::select! {
                    slept = shutdown.sleep(backoff) => if !slept { break },
                    () = broker.reconnected() => {}
                }
                backoff = (backoff * 2).min(LAST_RETRY);
            }
        }
    }
    dead_letters.close().await;
    tracing::debug!(queue = %settings.queue, "Consumer stopped.");
}

async fn consume<H: BatchHandler>(
    broker: &Broker,
    settings: &ConsumerSettings,
    handler: &H,
    metrics: &ConsumerMetrics,
    dead_letters: &Publisher,
    shutdown: &Shutdown,
    consumed: &mut bool,
) -> Result<()> {
    let channel = broker.channel().await?;
    if let Some(spec) = &settings.declare {
        bounded(
            "queue.declare",
            topology::declare_queue(&channel, &spec.topology, &settings.queue, &spec.exchange, &spec.bindings),
        )
        .await?;
    }
    bounded("basic.qos", channel.basic_qos(settings.prefetch, BasicQosOptions::default())).await?;
    let mut consumer = bounded(
        "basic.consume",
        channel.basic_consume(
            settings.queue.as_str().into(),
            ShortString::from(format!("rampart-{}", std::process::id())),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    tracing::info!(queue = %settings.queue, prefetch = settings.prefetch, concurrency = settings.concurrency, "Consuming.");
    *consumed = true;
    let consumed: Result<()> = if settings.concurrency > 1 {
        consume_concurrently(&channel, &mut consumer, settings, handler, metrics, dead_letters, shutdown).await
    } else {
        // Batches of up to `batch_max`, waiting at most `linger` for more.
        async {
            loop {
                let first = tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    next = consumer.next() => next,
                };
                let mut deliveries = vec![lost_if_none(first)?];
                while deliveries.len() < settings.batch_max {
                    match tokio::time::timeout(settings.linger, consumer.next()).await {
                        Ok(next) => deliveries.push(lost_if_none(next)?),
                        Err(_) => break,
                    }
                }
                process_batch(&channel, settings, handler, metrics, dead_letters, shutdown, deliveries).await?;
            }
        }
        .await
    };
    if consumed.is_ok() {
        // Closed here on shutdown, while the consumer is still held (see
        // `close_channel`). What is not acked returns to the queue with it.
        let _ = close_channel(&channel, "shutdown").await;
    }
    consumed
}

/// Up to `settings.concurrency` deliveries in flight, one transaction each.
/// On shutdown the applies under way finish (or give up their retries), and
/// what is not acked returns to the queue with the channel.
async fn consume_concurrently<H: BatchHandler>(
    channel: &Channel,
    consumer: &mut lapin::Consumer,
    settings: &ConsumerSettings,
    handler: &H,
    metrics: &ConsumerMetrics,
    dead_letters: &Publisher,
    shutdown: &Shutdown,
) -> Result<()> {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(done) = in_flight.next() => done?,
            next = consumer.next(), if in_flight.len() < settings.concurrency => {
                let delivery = lost_if_none(next)?;
                in_flight.push(process_batch(channel, settings, handler, metrics, dead_letters, shutdown, vec![delivery]));
            }
        }
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(())
}

fn lost_if_none(next: Option<lapin::Result<Delivery>>) -> Result<Delivery> {
    match next {
        Some(Ok(d)) => Ok(d),
        Some(Err(source)) => Err(AmqpError::Broker { operation: "basic.deliver", source }),
        None => Err(AmqpError::Broker {
            operation: "basic.deliver",
            source: lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                lapin::ChannelState::Closed,
                "consumer cancelled",
            )),
        }),
    }
}

async fn process_batch<H: BatchHandler>(
    channel: &Channel,
    settings: &ConsumerSettings,
    handler: &H,
    metrics: &ConsumerMetrics,
    dead_letters: &Publisher,
    shutdown: &Shutdown,
    deliveries: Vec<Delivery>,
) -> Result<()> {
    let mut accepted: Vec<(Delivery, H::Message)> = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match handler.decode(&delivery) {
            Ok(message) => accepted.push((delivery, message)),
            Err(rejection) => {
                dead_letter(channel, settings, handler, metrics, dead_letters, &delivery, &rejection.to_string())
                    .await?
            }
        }
    }
    if accepted.is_empty() {
        return Ok(());
    }
    let (deliveries, messages): (Vec<_>, Vec<_>) = accepted.into_iter().unzip();
    let mut backoff = Duration::from_millis(100);
    loop {
        match handler.apply(&messages).await {
            Ok(()) => {
                metrics.batches.fetch_add(1, Ordering::Relaxed);
                metrics.applied.fetch_add(messages.len() as u64, Ordering::Relaxed);
                let last = deliveries.last().expect("batch is not empty");
                // Acking "everything up to here" is right only when no other
                // delivery is being applied meanwhile.
                let multiple = settings.concurrency <= 1;
                bounded("basic.ack", channel.basic_ack(last.delivery_tag, BasicAckOptions { multiple })).await?;
                return Ok(());
            }
            Err(ApplyError::Transient(reason)) => {
                metrics.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(queue = %settings.queue, %reason, retry_in = ?backoff, "Cannot apply batch now; holding deliveries and retrying.");
                if !shutdown.sleep(backoff).await {
                    // Unacked deliveries return to the queue when the channel closes.
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(ApplyError::Rejected(reason)) if messages.len() == 1 => {
                dead_letter(channel, settings, handler, metrics, dead_letters, &deliveries[0], &reason).await?;
                return Ok(());
            }
            Err(ApplyError::Rejected(_)) => {
                // Find the bad one(s): apply one at a time.
                for (delivery, message) in deliveries.iter().zip(messages) {
                    apply_one(channel, settings, handler, metrics, dead_letters, shutdown, delivery, message).await?;
                }
                return Ok(());
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_one<H: BatchHandler>(
    channel: &Channel,
    settings: &ConsumerSettings,
    handler: &H,
    metrics: &ConsumerMetrics,
    dead_letters: &Publisher,
    shutdown: &Shutdown,
    delivery: &Delivery,
    message: H::Message,
) -> Result<()> {
    let batch = [message];
    let mut backoff = Duration::from_millis(100);
    loop {
        match handler.apply(&batch).await {
            Ok(()) => {
                metrics.applied.fetch_add(1, Ordering::Relaxed);
                return bounded("basic.ack", channel.basic_ack(delivery.delivery_tag, BasicAckOptions::default()))
                    .await
                    .map(|_| ());
            }
            Err(ApplyError::Rejected(reason)) => {
                return dead_letter(channel, settings, handler, metrics, dead_letters, delivery, &reason).await;
            }
            Err(ApplyError::Transient(reason)) => {
                metrics.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(queue = %settings.queue, %reason, "Cannot apply message now; retrying.");
                if !shutdown.sleep(backoff).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
