//! The command queue of each agent identity, declared by the site.
//!
//! An agent's broker user has no `configure` permission, so the site
//! declares its queue (with the dead-letter wiring every queue has) and
//! binds it from `<ns>.agents` with one binding per endpoint the identity
//! owns (`site.<site>.endpoint.<id>`): the queue receives the commands of
//! those endpoints and nothing else, and the routing keys (which the site's
//! seal covers) stay the same for every agent. `docs/security.md` says why
//! a binding per endpoint rather than a per-agent routing key. A keeper
//! declares a queue again when it goes missing.

use std::time::Duration;

use lapin::{options::QueueBindOptions, types::FieldTable};
use rampart_shared::{
    amqp::{bounded, close_channel, AmqpError},
    topology::{self, Topology},
    Shutdown,
};

use crate::state::{AppState, SharedState};

/// Channels that bind an agent's queue at once.
const BINDING_CHANNELS: usize = 8;
/// How often the keeper looks for missing agent queues.
const KEEP_EVERY: Duration = Duration::from_secs(30);

/// Declares `queue` and binds it to each of `endpoints`' command keys
/// (idempotent). The bindings go over [`BINDING_CHANNELS`] channels at once:
/// each is a round trip the broker commits on its own.
pub async fn declare(state: &AppState, queue: &str, endpoints: &[String]) -> Result<(), AmqpError> {
    let site = &state.site;
    let exchange = site.topology.agents_exchange();
    let channel = state.broker.channel().await?;
    bounded("queue.declare", topology::declare_queue(&channel, &site.topology, queue, &exchange, &[])).await?;
    let _ = close_channel(&channel, "agent queue declared").await;
    let per_channel = endpoints.len().div_ceil(BINDING_CHANNELS).max(1);
    let pairs: Vec<(&str, &str)> = endpoints.iter().map(|endpoint| (queue, endpoint.as_str())).collect();
    let binders = pairs.chunks(per_channel).map(|chunk| bind(state, chunk, "agent queue bound"));
    futures_util::future::try_join_all(binders).await?;
    Ok(())
}

/// Binds each (queue, endpoint) pair: the queue from `<ns>.agents` with the
/// endpoint's command key, on a channel of its own (closed saying `done`).
pub(super) async fn bind(state: &AppState, pairs: &[(&str, &str)], done: &str) -> Result<(), AmqpError> {
    let exchange = state.site.topology.agents_exchange();
    let channel = state.broker.channel().await?;
    for &(queue, endpoint) in pairs {
        let key = Topology::endpoint_key(&state.site.instance, endpoint);
        bounded(
            "queue.bind",
            channel.queue_bind(
                queue.into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
    }
    let _ = close_channel(&channel, done).await;
    Ok(())
}

/// Deletes `queue` and its parking queue.
pub async fn delete(state: &AppState, queue: &str) -> Result<(), AmqpError> {
    let channel = state.broker.channel().await?;
    bounded("queue.delete", topology::delete_queue(&channel, queue)).await?;
    let _ = close_channel(&channel, "agent queue deleted").await;
    Ok(())
}

/// Declares again, every [`KEEP_EVERY`], the queue of each identity not
/// revoked whose queue is missing, until shutdown.
pub async fn keep(state: SharedState, shutdown: Shutdown) {
    while shutdown.sleep(KEEP_EVERY).await {
        if let Err(error) = redeclare_missing(&state).await {
            tracing::warn!(error = %format!("{error:#}"), "Cannot check the agents' queues; trying later.");
        }
    }
}

async fn redeclare_missing(state: &AppState) -> anyhow::Result<()> {
    let client = state.pool.get().await?;
    let identities = client.query("SELECT id, queue FROM agent_identities WHERE revoked_at IS NULL", &[]).await?;
    for identity in &identities {
        let (agent_id, queue): (&str, &str) = (identity.get(0), identity.get(1));
        if state.broker.queue_depth(queue).await.is_some() {
            continue;
        }
        let rows = client.query("SELECT endpoint_id FROM endpoint_owners WHERE agent_id = $1", &[&agent_id]).await?;
        let endpoints: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        declare(state, queue, &endpoints).await?;
        tracing::warn!(agent_id, queue, endpoints = endpoints.len(), "Declared a missing agent queue again.");
    }
    Ok(())
}
