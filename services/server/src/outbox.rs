//! The outbox: commands are written in the same transaction as the change
//! that causes them, and a relay publishes them with confirms, deleting each
//! row only once the broker confirmed it. A crash between publish and delete
//! republishes the same envelope (same message id): consumers apply
//! idempotently, so nothing is lost and nothing happens twice in effect.
//! A destination whose message the broker refuses or does not confirm is
//! held back for a few seconds while the others go on.

use std::{collections::HashMap, sync::Arc, time::Duration};

use deadpool_postgres::{GenericClient, Pool};
use rampart_shared::{
    amqp::publisher::{Delivered, Outgoing, Publisher},
    db::CachedStatements,
    envelope,
    signing::SigningKey,
    site_key::SiteKey,
    Envelope, Shutdown,
};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{failpoints::Failpoints, wakes::Wake};

/// One command to publish.
pub struct Command {
    pub exchange: String,
    pub routing_key: String,
    pub envelope: Envelope,
    /// How to sign the exact published bytes, if at all.
    pub signer: Option<Signer>,
}

/// How a queued command is signed.
#[derive(Clone, Debug)]
pub enum Signer {
    /// HMAC with a key shared with the peer (master <-> slave traffic, events).
    Shared(SigningKey),
    /// The site's Ed25519 command key, with an expiry (commands to endpoints).
    Site(Arc<SiteKey>),
}

impl Signer {
    /// The signature header's value for `payload` published with `routing_key`.
    fn sign(&self, routing_key: &str, payload: &[u8]) -> String {
        match self {
            Self::Shared(key) => key.sign(payload),
            Self::Site(key) => key.seal_now(routing_key, payload),
        }
    }
}

/// Queues commands inside the caller's transaction (`tx` must be one). Each envelope gets its
/// outbox id as `seq` and is stored as the bytes that will be published,
/// signed now (so a key removed later, e.g. on unregister, still signs what
/// was queued before).
pub async fn enqueue<C: GenericClient>(tx: &C, commands: &[Command]) -> Result<(), tokio_postgres::Error> {
    if commands.is_empty() {
        return Ok(());
    }
    let count = commands.len() as i64;
    let ids: Vec<i64> = tx
        .query_cached("SELECT nextval('outbox_id_seq') FROM generate_series(1, $1::bigint)", &[&count])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut exchanges = Vec::with_capacity(commands.len());
    let mut keys = Vec::with_capacity(commands.len());
    let mut payloads = Vec::with_capacity(commands.len());
    let mut message_ids: Vec<Uuid> = Vec::with_capacity(commands.len());
    let mut kinds = Vec::with_capacity(commands.len());
    let mut signatures: Vec<Option<String>> = Vec::with_capacity(commands.len());
    for (command, id) in commands.iter().zip(&ids) {
        let mut envelope = command.envelope.clone();
        envelope.seq = *id as u64;
        let payload = envelope.to_bytes();
        signatures.push(command.signer.as_ref().map(|s| s.sign(&command.routing_key, &payload)));
        exchanges.push(command.exchange.as_str());
        keys.push(command.routing_key.as_str());
        message_ids.push(envelope.id);
        kinds.push(command.envelope.kind.as_str());
        payloads.push(payload);
    }
    tx.execute_cached(
        "INSERT INTO outbox (id, exchange, routing_key, payload, message_id, kind, signature)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::uuid[], $6::text[], $7::text[])",
        &[&ids, &exchanges, &keys, &payloads, &message_ids, &kinds, &signatures],
    )
    .await?;
    Ok(())
}

/// Rows waiting to be published.
pub async fn depth<C: deadpool_postgres::GenericClient>(client: &C) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one_cached("SELECT count(*) FROM outbox", &[]).await?.get(0))
}

/// How long a destination whose message the broker refused or did not
/// confirm is left out of the relay's batches before it is tried again.
const HOLD: Duration = Duration::from_secs(5);

/// Destinations (`exchange routing_key`) left out of the relay for now, and
/// until when: one slave's queue that refuses or never confirms (a quorum
/// queue without a leader) must not hold up every other destination.
#[derive(Debug, Default)]
struct Held(HashMap<String, Instant>);

impl Held {
    fn current(&mut self) -> Vec<String> {
        let now = Instant::now();
        self.0.retain(|_, until| *until > now);
        self.0.keys().cloned().collect()
    }

    /// When the relay looks again without a wake: once the first held
    /// destination may be tried again, and at the latest after
    /// [`IDLE_POLL`].
    fn next_look(&self) -> Instant {
        let idle = Instant::now() + IDLE_POLL;
        self.0.values().copied().min().map_or(idle, |until| until.min(idle))
    }
}

/// Longest the relay waits for a wake. Every commit that queues something
/// wakes it (a wake is kept until the relay waits again, so none is
/// missed); the look catches rows queued without one. It was a look a
/// second: about 1,000 statements a second from a fleet of 1,000 idle
/// slaves on one machine, and each slave's pool kept a connection open for
/// it.
const IDLE_POLL: Duration = Duration::from_secs(10);

/// Publishes the outbox until shutdown. `wake` is notified after each commit
/// that enqueued something; a slow poll covers anything missed.
pub async fn relay(
    pool: Pool,
    publisher: Arc<Publisher>,
    wake: Arc<Wake>,
    failpoints: Arc<Failpoints>,
    shutdown: Shutdown,
) {
    const BATCH: i64 = 1000;
    let mut backoff = Duration::from_millis(200);
    let mut held = Held::default();
    loop {
        match relay_once(&pool, &publisher, &failpoints, &mut held, BATCH).await {
            Ok(n) if n as i64 == BATCH => continue, // more waiting
            Ok(_) => {
                backoff = Duration::from_millis(200);
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = wake.woken() => {}
                    _ = tokio::time::sleep_until(held.next_look()) => {}
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

/// Relays one batch (oldest first, held destinations left out); returns
/// how many rows it read.
async fn relay_once(
    pool: &Pool,
    publisher: &Publisher,
    failpoints: &Failpoints,
    held: &mut Held,
    limit: i64,
) -> anyhow::Result<usize> {
    let client = pool.get().await?;
    let rows = client
        .query_cached(
            "SELECT id, exchange, routing_key, payload, message_id, kind, signature FROM outbox
              WHERE NOT (exchange || ' ' || routing_key = ANY($2)) ORDER BY id LIMIT $1",
            &[&limit, &held.current()],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.get::<_, i64>(0));
        messages.push(Outgoing {
            exchange: row.get(1),
            routing_key: row.get(2),
            payload: row.get(3),
            properties: envelope::properties(row.get(4), row.get(5), row.get(6)),
        });
    }
    let outcomes = publisher.publish_each(messages).await?;
    failpoints.after_relay_confirm(rows.iter().map(|r| r.get::<_, &str>(5))).await;
    let (done, unroutable, failed) = sort_outcomes(&ids, &outcomes);
    if !unroutable.is_empty() {
        tracing::warn!(
            count = unroutable.len(),
            first = unroutable[0],
            "Messages had no queue bound (no agent serves those endpoints, or the peer server is gone); dropped."
        );
    }
    client.execute_cached("DELETE FROM outbox WHERE id = ANY($1)", &[&done]).await?;
    for (exchange, routing_key, error) in &failed {
        if held.0.insert(format!("{exchange} {routing_key}"), Instant::now() + HOLD).is_none() {
            tracing::warn!(exchange, routing_key, error = %error, hold = ?HOLD,
                           "The broker did not confirm a message; holding its destination back and trying it again later.");
        }
    }
    tracing::debug!(published = done.len(), held = failed.len(), "Relayed outbox.");
    Ok(ids.len())
}

/// Sorts a relayed batch: the rows done with (confirmed, or unroutable and
/// dropped), the routing keys of the unroutable ones, and the failures.
/// Once a message to some destination failed, every later message to the
/// same destination stays too, even if confirmed, so that a destination
/// never receives a newer command before an older one for good (the kept
/// ones are published again in order; receivers apply idempotently). One
/// destination that refuses or never confirms holds up only itself.
type Failed<'a> = Vec<(&'a str, &'a str, String)>;

fn sort_outcomes<'a>(
    ids: &[i64],
    outcomes: &'a [(Outgoing, rampart_shared::amqp::Result<Delivered>)],
) -> (Vec<i64>, Vec<&'a str>, Failed<'a>) {
    let mut done = Vec::with_capacity(ids.len());
    let mut unroutable = Vec::new();
    let mut failed: Failed<'a> = Vec::new();
    let mut blocked: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (id, (message, outcome)) in ids.iter().zip(outcomes) {
        let destination = (message.exchange.as_str(), message.routing_key.as_str());
        match outcome {
            Err(error) => {
                blocked.insert(destination);
                failed.push((destination.0, destination.1, error.to_string()));
            }
            Ok(_) if blocked.contains(&destination) => {
                failed.push((destination.0, destination.1, "an earlier message to it failed".into()))
            }
            Ok(Delivered::Confirmed) => done.push(*id),
            Ok(Delivered::Unroutable) => {
                done.push(*id);
                unroutable.push(message.routing_key.as_str());
            }
        }
    }
    (done, unroutable, failed)
}

#[cfg(test)]
mod tests {
    use rampart_shared::amqp::AmqpError;

    use super::*;

    fn message(routing_key: &str) -> Outgoing {
        Outgoing {
            exchange: "ns.commands".into(),
            routing_key: routing_key.into(),
            payload: vec![],
            properties: Default::default(),
        }
    }

    #[test]
    fn a_destination_that_fails_holds_up_only_its_own_later_messages() {
        let nack = |key: &str| Err(AmqpError::Nacked { exchange: "ns.commands".into(), routing_key: key.into() });
        let outcomes = vec![
            (message("slave.paris"), Ok(Delivered::Confirmed)),
            (message("slave.lyon"), nack("slave.lyon")),
            (message("slave.paris"), Ok(Delivered::Confirmed)),
            (message("slave.lyon"), Ok(Delivered::Confirmed)),
            (message("slave.gone"), Ok(Delivered::Unroutable)),
        ];
        let (done, unroutable, failed) = sort_outcomes(&[1, 2, 3, 4, 5], &outcomes);
        assert_eq!(done, [1, 3, 5]);
        assert_eq!(unroutable, ["slave.gone"]);
        assert_eq!(failed.iter().map(|(_, k, _)| *k).collect::<Vec<_>>(), ["slave.lyon", "slave.lyon"]);
        assert!(failed[1].2.contains("earlier message"), "{failed:?}");
    }

    #[test]
    fn the_relay_looks_again_when_the_first_hold_ends_or_after_the_idle_poll() {
        let mut held = Held::default();
        let idle = held.next_look() - Instant::now();
        assert!(idle > IDLE_POLL - Duration::from_secs(1) && idle <= IDLE_POLL, "{idle:?}");
        let soon = Instant::now() + Duration::from_secs(2);
        held.0.insert("ns.commands slave.lyon".into(), soon + Duration::from_secs(1));
        held.0.insert("ns.commands slave.nice".into(), soon);
        assert_eq!(held.next_look(), soon, "the first hold to end");
        held.0.insert("ns.commands slave.gone".into(), Instant::now() + IDLE_POLL * 2);
        assert_eq!(held.next_look(), soon);
        held.0.clear();
        held.0.insert("ns.commands slave.gone".into(), Instant::now() + IDLE_POLL * 2);
        assert!(held.next_look() <= Instant::now() + IDLE_POLL, "never later than the idle poll");
    }
}
