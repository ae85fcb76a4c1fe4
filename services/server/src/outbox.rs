//! The outbox: commands are written in the same transaction as the change
//! that causes them, and a relay publishes them with confirms, deleting each
//! row only once the broker confirmed it. A crash between publish and delete
//! republishes the same envelope (same message id): consumers apply
//! idempotently, so nothing is lost and nothing happens twice in effect.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Pool, Transaction};
use rampart_shared::{
    amqp::publisher::{Delivered, Outgoing, Publisher},
    Envelope, Shutdown,
};
use tokio::sync::Notify;

/// One command to publish.
pub struct Command {
    pub exchange: String,
    pub routing_key: String,
    pub envelope: Envelope,
}

/// Queues commands inside the caller's transaction.
pub async fn enqueue(tx: &Transaction<'_>, commands: &[Command]) -> Result<(), tokio_postgres::Error> {
    if commands.is_empty() {
        return Ok(());
    }
    let exchanges: Vec<&str> = commands.iter().map(|c| c.exchange.as_str()).collect();
    let keys: Vec<&str> = commands.iter().map(|c| c.routing_key.as_str()).collect();
    let envelopes: Vec<serde_json::Value> = commands
        .iter()
        .map(|c| serde_json::to_value(&c.envelope).expect("envelopes serialize"))
        .collect();
    tx.execute(
        "INSERT INTO outbox (exchange, routing_key, envelope)
         SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])",
        &[&exchanges, &keys, &envelopes],
    )
    .await?;
    Ok(())
}

/// Rows waiting to be published.
pub async fn depth<C: deadpool_postgres::GenericClient>(client: &C) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one("SELECT count(*) FROM outbox", &[]).await?.get(0))
}

/// Publishes the outbox until shutdown. `wake` is notified after each commit
/// that enqueued something; a slow poll covers anything missed.
pub async fn relay(pool: Pool, publisher: Arc<Publisher>, wake: Arc<Notify>, shutdown: Shutdown) {
    const BATCH: i64 = 1000;
    let mut backoff = Duration::from_millis(200);
    loop {
        match relay_once(&pool, &publisher, BATCH).await {
            Ok(n) if n as i64 == BATCH => continue, // more waiting
            Ok(_) => {
                backoff = Duration::from_millis(200);
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "Outbox relay failed; retrying.");
                if !shutdown.sleep(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn relay_once(pool: &Pool, publisher: &Publisher, limit: i64) -> anyhow::Result<usize> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, exchange, routing_key, envelope FROM outbox ORDER BY id LIMIT $1",
            &[&limit],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.get(0);
        let mut envelope: Envelope = serde_json::from_value(row.get(3))?;
        envelope.seq = id as u64;
        ids.push(id);
        messages.push(Outgoing::envelope(row.get::<_, String>(1), row.get::<_, String>(2), &envelope, None));
    }
    let outcomes = publisher.publish_batch(messages).await?;
    let unroutable: Vec<&str> = outcomes
        .iter()
        .filter(|(_, d)| matches!(d, Delivered::Unroutable))
        .map(|(m, _)| m.routing_key.as_str())
        .collect();
    if !unroutable.is_empty() {
        tracing::warn!(count = unroutable.len(), first = unroutable[0], "Commands had no queue bound (no agent serves those endpoints); dropped.");
    }
    client.execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids]).await?;
    tracing::debug!(published = ids.len(), "Relayed outbox.");
    Ok(ids.len())
}
