//! Wiring one fleet process together.
//!
//! One broker connection. Declares the namespace's exchanges and this
//! process's command queue (unless the process is enrolled: then its site
//! declared the queue), starts the shared consumer on that queue, then
//! runs a single loop that owns the [`Fleet`]: every tick it advances time,
//! every command batch it applies, and after either it flushes the
//! [`Outbox`]. No task per endpoint: ten thousand computers are one loop.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::Utc;
use rampart_shared::{
    amqp::{
        bounded, close_channel,
        consumer::{self, ConsumerMetrics, ConsumerSettings, QueueSpec},
        publisher::Publisher,
        AmqpError, Broker,
    },
    topology::{self, Topology},
    Shutdown,
};
use tokio::{
    sync::mpsc,
    time::{interval, interval_at, Instant, MissedTickBehavior},
};

use crate::{
    commands::{CommandHandler, RoutedCommand},
    fleet::{Fleet, FleetConfig, Moment},
    outbox::Outbox,
    settings::AgentSettings,
    trust::{CommandRefusals, CommandTrust},
};

/// How often the fleet advances time (heartbeats due, scans finished).
const TICK: Duration = Duration::from_millis(250);
/// How often unroutable events are tried again.
const RETRY_UNROUTABLE: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last messages and the consumer.
const GRACE: Duration = Duration::from_secs(5);
/// Command batches waiting for the fleet loop before the consumer waits.
const COMMAND_BATCHES: usize = 16;
/// How often the exchanges and the queue are declared again (idempotent),
/// so the fleet heals if they were deleted under it.
const REDECLARE_EVERY: Duration = Duration::from_secs(30);

/// Runs the fleet until `shutdown` is triggered. Broker failures are waited
/// out (with back-off), never fatal.
pub async fn run(settings: AgentSettings, shutdown: Shutdown) -> anyhow::Result<()> {
    run_with(settings, shutdown, Arc::default()).await
}

/// [`run`], counting refused commands in `refusals` (a test reads them).
pub async fn run_with(
    settings: AgentSettings,
    shutdown: Shutdown,
    refusals: Arc<CommandRefusals>,
) -> anyhow::Result<()> {
    settings.validate().context("Invalid agent settings")?;
    let topology = Topology::new(&settings.namespace);
    let connection_name = format!("rampart-agent {}", settings.name);
    let broker = Arc::new(Broker::new(settings.amqp_url.clone(), connection_name));
    let queue = topology.agent_queue(settings.site.as_str(), settings.name.as_str());
    tracing::info!(
        broker = %broker.display_url(),
        namespace = %settings.namespace,
        site = %settings.site,
        name = %settings.name,
        endpoints = settings.endpoints,
        unmanaged = settings.unmanaged,
        seed = settings.seed,
        "Starting the agent fleet."
    );
    match &settings.site_key {
        Some(key) => tracing::info!(fingerprint = key.fingerprint(), "Commands must be sealed by the site's key."),
        None => tracing::warn!("No site key (--site-key): every command from the site will be refused."),
    }
    // The command queue: an enrolled process's was declared and bound by
    // its site (its broker user may not declare anything); otherwise the
    // process declares it, and the consumer again on every reconnect.
    let (queue, spec, keeper) = match &settings.identity {
        Some(identity) => {
            tracing::info!(agent_id = %identity.agent_id, broker_user = %identity.broker_user, queue = %identity.queue,
                           "Running as an enrolled agent identity.");
            (identity.queue.clone(), None, None)
        }
        None => {
            let spec = QueueSpec {
                topology: topology.clone(),
                exchange: topology.agents_exchange(),
                bindings: vec![Topology::endpoints_binding(settings.site.as_str())],
            };
            if !declare_until_done(&broker, &spec, &queue, &shutdown).await {
                broker.close().await;
                return Ok(());
            }
            let keeper = tokio::spawn(keep_declared(broker.clone(), spec.clone(), queue.clone(), shutdown.clone()));
            (queue, Some(spec), Some(keeper))
        }
    };

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BATCHES);
    let consumer_metrics = Arc::new(ConsumerMetrics::default());
    let consumer = tokio::spawn(consumer::run(
        broker.clone(),
        ConsumerSettings {
            queue,
            dead_letter_exchange: topology.dead_letter_exchange(),
            prefetch: 200,
            batch_max: 100,
            linger: Duration::from_millis(20),
            concurrency: 1,
            declare: spec,
        },
        Arc::new(CommandHandler::new(
            &settings.site,
            commands_tx,
            CommandTrust::new(settings.site_key, refusals.clone()),
        )),
        consumer_metrics.clone(),
        shutdown.clone(),
    ));

    let first_seq = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
    let user_id = settings.identity.as_ref().map(|i| i.broker_user.clone());
    let outbox = Outbox::new(Publisher::new(broker.clone()), &topology, &settings.site, first_seq, user_id);
    let fleet = Fleet::new(FleetConfig::from_settings(&settings), Utc::now().date_naive());
    let mut fleet_loop = FleetLoop {
        fleet,
        outbox,
        started: Instant::now(),
        summary_interval: settings.summary_interval,
        consumer_metrics,
        refusals,
    };
    fleet_loop.run(commands_rx, &shutdown).await;

    // Drain: the last results, then the consumer, then the connection.
    let _ = tokio::time::timeout(GRACE, fleet_loop.outbox.flush(&mut fleet_loop.fleet, None)).await;
    if tokio::time::timeout(GRACE, consumer).await.is_err() {
        tracing::warn!(grace = ?GRACE, "The command consumer did not stop in time.");
    }
    if let Some(keeper) = keeper {
        keeper.abort();
    }
    broker.close().await;
    fleet_loop.log_summary("Agent fleet stopped.");
    Ok(())
}

/// Declares the exchanges and this process's queue, retrying until it
/// works; `false` if shutdown came first.
async fn declare_until_done(broker: &Broker, spec: &QueueSpec, queue: &str, shutdown: &Shutdown) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        match declare(broker, spec, queue).await {
            Ok(()) => {
                tracing::info!(queue, "Declared the command queue.");
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "Cannot declare the broker topology; retrying.");
            }
        }
        if !shutdown.sleep(backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Declares the topology again now and then until shutdown.
async fn keep_declared(broker: Arc<Broker>, spec: QueueSpec, queue: String, shutdown: Shutdown) {
    while shutdown.sleep(REDECLARE_EVERY).await {
        if let Err(error) = declare(&broker, &spec, &queue).await {
            tracing::debug!(%error, "Cannot declare the broker topology again; trying later.");
        }
    }
}

/// Makes sure the namespace's exchanges exist (an agent's broker user may
/// not declare them: its site server does), then declares `queue` as
/// `spec` says.
async fn declare(broker: &Broker, spec: &QueueSpec, queue: &str) -> Result<(), AmqpError> {
    topology::ensure_exchanges(broker, &spec.topology).await?;
    let channel = broker.channel().await?;
    bounded("queue.declare", topology::declare_queue(&channel, &spec.topology, queue, &spec.exchange, &spec.bindings))
        .await?;
    let _ = close_channel(&channel, "declared").await;
    Ok(())
}

/// The loop that owns the fleet and its outbox.
struct FleetLoop {
    fleet: Fleet,
    outbox: Outbox,
    /// Time zero of the fleet's timers.
    started: Instant,
    summary_interval: Duration,
    consumer_metrics: Arc<ConsumerMetrics>,
    /// Commands refused as unsigned, wrongly signed, replayed or stale.
    refusals: Arc<CommandRefusals>,
}

impl FleetLoop {
    async fn run(&mut self, mut commands: mpsc::Receiver<Vec<RoutedCommand>>, shutdown: &Shutdown) {
        let mut ticker = interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut summary = interval_at(self.started + self.summary_interval, self.summary_interval);
        let mut retry_unroutable = interval_at(self.started + RETRY_UNROUTABLE, RETRY_UNROUTABLE);
        let mut first_round_pending = true;
        loop {
            self.outbox.flush(&mut self.fleet, Some(shutdown)).await;
            if first_round_pending && self.fleet.heartbeats_owed() == 0 {
                first_round_pending = false;
                let stats = self.outbox.stats();
                tracing::info!(
                    endpoints = self.fleet.endpoints().len(),
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    published = stats.published,
                    unroutable = stats.unroutable,
                    "Sent the first heartbeat of every endpoint."
                );
            }
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = ticker.tick() => {
                    let events = self.fleet.tick(self.now());
                    self.outbox.extend(events);
                }
                Some(batch) = commands.recv() => self.apply(batch),
                _ = summary.tick() => self.log_summary("Agent fleet is running."),
                _ = retry_unroutable.tick() => self.outbox.release_parked(),
            }
        }
    }

    fn now(&self) -> Moment {
        Moment { elapsed: self.started.elapsed(), wall: Utc::now() }
    }

    fn apply(&mut self, batch: Vec<RoutedCommand>) {
        let now = self.now();
        for routed in batch {
            let _span = tracing::debug_span!(
                "command",
                kind = routed.command.kind(),
                endpoint = %routed.endpoint_id,
                message_id = %routed.message_id,
            )
            .entered();
            let deployments = self.fleet.stats().deployments;
            let replies = self.fleet.apply(&routed.endpoint_id, routed.command, now);
            if self.fleet.stats().deployments > deployments {
                tracing::info!(computer = %routed.endpoint_id, "Deployed an agent on a discovered computer.");
            } else {
                tracing::debug!(replies = replies.len(), "Applied a command.");
            }
            self.outbox.extend(replies);
        }
    }

    fn log_summary(&self, message: &str) {
        let fleet = self.fleet.stats();
        let outbox = self.outbox.stats();
        let (unsigned, bad_signature, replayed, stale) = self.refusals.snapshot();
        tracing::info!(
            endpoints = self.fleet.endpoints().len(),
            unmanaged = self.fleet.unmanaged().len(),
            sent = outbox.published,
            unroutable = outbox.unroutable,
            dropped = outbox.dropped,
            waiting = self.outbox.waiting(),
            heartbeats_owed = self.fleet.heartbeats_owed(),
            detections = fleet.detections,
            tasks_done = fleet.tasks_finished,
            tasks_running = self.fleet.scans_running(),
            tasks_cancelled = fleet.tasks_cancelled,
            policies_applied = fleet.policies_applied,
            deployments = fleet.deployments,
            commands = self.consumer_metrics.applied.load(std::sync::atomic::Ordering::Relaxed),
            dead_lettered = self.consumer_metrics.dead_lettered.load(std::sync::atomic::Ordering::Relaxed),
            refused_unsigned = unsigned,
            refused_bad_signature = bad_signature,
            refused_replayed = replayed,
            refused_stale = stale,
            "{message}"
        );
    }
}
