//! The floor of a fan-out across sites: the broker's own fan-out with a
//! commit per message ([`crate::broker_fanout`]), but from the master's
//! node to each slave's node through a shovel, as a policy travels between
//! sites (`docs/multi-site.md`), with nothing of Rampart on the path.
//!
//! One quorum queue per slave on the master's node, the same queue on that
//! slave's node, and a dynamic shovel on the slave's node moving one to
//! the other (`ack-mode: on-confirm`, the prefetch and reconnect delay of
//! Rampart's links): a round publishes one persistent message to each
//! master-side queue with confirms, and ends when the consumer on the last
//! slave's node has committed a row for it before its ack. Measured on the
//! same nodes as the linked hierarchy, its ratio to the one-broker floor is
//! what the links and the extra nodes cost on this machine before any
//! server works.

use std::time::Duration;

use anyhow::{bail, Context};
use lapin::options::{ConfirmSelectOptions, QueueBindOptions, QueueDeleteOptions};
use rampart_server::hierarchy::broker_links::{PREFETCH, RECONNECT_DELAY};
use rampart_shared::{
    amqp::{bounded, close_channel, Broker},
    broker_admin::ShovelDefinition,
    Secret,
};
use rampart_tests::faults::broker::PrivateBroker;
use tokio::time::Instant;

use crate::{
    broker_fanout::{declare_quorum, rounds_over, COMMITS_TABLE},
    stats::Percentiles,
};

/// Longest the shovels may take to run.
const SHOVELS_TIMEOUT: Duration = Duration::from_secs(60);

/// `rounds` rounds from `master` to each of `slaves` through a shovel per
/// slave, each consumer committing into `database_url`; removes its queues
/// and shovels whatever happened.
pub async fn measure(
    master: &PrivateBroker,
    slaves: &[&PrivateBroker],
    namespace: &str,
    rounds: usize,
    body: &[u8],
    database_url: &str,
) -> anyhow::Result<Percentiles> {
    let names: Vec<String> = (0..slaves.len()).map(|i| format!("{namespace}.site_floor_{i:03}")).collect();
    let publisher = Broker::connect(Secret::new(master.url()), "rampart-bench-site-floor").await?;
    let mut consumers = Vec::with_capacity(slaves.len());
    for (i, node) in slaves.iter().enumerate() {
        consumers.push(Broker::connect(Secret::new(node.url()), format!("rampart-bench-site-floor-{i:03}")).await?);
    }
    let measured = linked_rounds(master, slaves, &publisher, &consumers, &names, rounds, body, database_url).await;
    for (node, name) in slaves.iter().zip(&names) {
        let _ = node.management().delete_shovel("/", name).await;
    }
    if let Ok(channel) = publisher.channel().await {
        for name in &names {
            let _ = bounded("queue.delete", channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()))
                .await;
        }
        let _ = close_channel(&channel, "done").await;
    }
    for broker in consumers.iter().chain([&publisher]) {
        broker.close().await;
    }
    let latency = measured?;
    tracing::info!(
        slaves = slaves.len(),
        rounds,
        p50_ms = latency.p50_ms,
        p99_ms = latency.p99_ms,
        "Measured the broker's fan-out across sites with a commit per message."
    );
    Ok(latency)
}

#[allow(clippy::too_many_arguments)]
async fn linked_rounds(
    master: &PrivateBroker,
    slaves: &[&PrivateBroker],
    publisher: &Broker,
    consumers: &[Broker],
    names: &[String],
    rounds: usize,
    body: &[u8],
    database_url: &str,
) -> anyhow::Result<Percentiles> {
    let publishing = publisher.channel().await?;
    for ((node, consumer), name) in slaves.iter().zip(consumers).zip(names) {
        declare_quorum(&publishing, name).await?;
        let channel = consumer.channel().await?;
        declare_quorum(&channel, name).await?;
        bounded(
            "queue.bind",
            channel.queue_bind(
                name.as_str().into(),
                "amq.direct".into(),
                name.as_str().into(),
                QueueBindOptions::default(),
                Default::default(),
            ),
        )
        .await
        .with_context(|| format!("Failed to bind {name} on {}", node.node))?;
        close_channel(&channel, "declared").await?;
        let shovel = ShovelDefinition {
            name: name.clone(),
            src_uri: Secret::new(master.url()),
            src_queue: name.clone(),
            dest_uri: Secret::new(ShovelDefinition::local_uri("/")),
            dest_exchange: "amq.direct".into(),
            prefetch: PREFETCH,
            reconnect_delay: RECONNECT_DELAY,
        };
        node.management().put_shovel("/", &shovel).await.with_context(|| format!("Failed to make shovel {name}"))?;
    }
    wait_running(slaves, names).await?;
    bounded("confirm.select", publishing.confirm_select(ConfirmSelectOptions::default())).await?;
    let mut clients = Vec::with_capacity(names.len());
    for _ in names {
        clients.push(crate::stats::connect(database_url, "the site floor's database").await?);
    }
    clients[0].batch_execute(COMMITS_TABLE).await.context("Failed to create the fan-out commits table")?;
    crate::stats::checkpoint(&clients[0], "the fan-out across sites").await;
    let brokers: Vec<&Broker> = consumers.iter().collect();
    let latency = rounds_over(&brokers, &publishing, names, rounds, body, Some(clients)).await;
    let _ = close_channel(&publishing, "done").await;
    latency
}

/// Waits until each slave's node runs its shovel.
async fn wait_running(slaves: &[&PrivateBroker], names: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + SHOVELS_TIMEOUT;
    for (node, name) in slaves.iter().zip(names) {
        loop {
            let statuses = node.management().shovel_statuses("/").await?;
            if statuses.iter().any(|s| &s.name == name && s.is_running()) {
                break;
            }
            if Instant::now() >= deadline {
                bail!("the shovel {name} on {} did not run within {SHOVELS_TIMEOUT:?}: {statuses:?}", node.node);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
