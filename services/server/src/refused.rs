//! The audit of refused messages: where an operator sees what this server
//! would not apply, and why.
//!
//! Every consumer of the server records here each message it dead-letters
//! (malformed, forged, from an unknown or removed sender, poison), beside
//! the counter and the WARN line every refusal gets; late messages that
//! are acknowledged but ignored (a task result for a task that is gone) are
//! recorded too. `GET /api/refused-messages` and `rampartctl refused` show
//! them, newest first. The table keeps the newest [`KEEP`] rows, so a flood
//! of garbage cannot fill the disk.

use deadpool_postgres::GenericClient;
use lapin::message::Delivery;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;

/// How many refusals the audit keeps.
pub const KEEP: i64 = 100_000;
/// Longest sender id stored (the rest is cut).
const MAX_SENDER: usize = 128;

/// One refused or ignored message.
#[derive(Clone, Debug, Default)]
pub struct Refusal {
    /// The queue it arrived on.
    pub queue: String,
    /// The envelope's `from`, when it could be read.
    pub sender: Option<String>,
    /// On a master: the slave the routing key named.
    pub slave: Option<String>,
    /// The AMQP `type`.
    pub kind: Option<String>,
    pub message_id: Option<String>,
    pub reason: String,
}

impl Refusal {
    /// What a delivery says of itself (it may be malformed or forged).
    pub fn of_delivery(queue: &str, delivery: &Delivery, slave: Option<&str>, reason: &str) -> Self {
        #[derive(Deserialize)]
        struct Sender {
            from: Option<String>,
        }
        let sender = serde_json::from_slice::<Sender>(&delivery.data).ok().and_then(|s| s.from);
        Self {
            queue: queue.to_owned(),
            sender: sender.map(|s| s.chars().take(MAX_SENDER).collect()),
            slave: slave.map(str::to_owned),
            kind: delivery.properties.kind().as_ref().map(|k| k.to_string()),
            message_id: delivery.properties.message_id().as_ref().map(|k| k.to_string()),
            reason: reason.to_owned(),
        }
    }
}

/// Records a refusal with `client` (inside the caller's transaction, when
/// it is one), dropping the oldest beyond [`KEEP`].
pub async fn record_with<C: GenericClient>(client: &C, r: &Refusal) -> Result<(), tokio_postgres::Error> {
    let id: i64 = client
        .query_one(
            "INSERT INTO refused_messages (queue, sender, slave_id, kind, message_id, reason) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id",
            &[&r.queue, &r.sender, &r.slave, &r.kind, &r.message_id, &r.reason],
        )
        .await?
        .get(0);
    client.execute("DELETE FROM refused_messages WHERE id <= $1", &[&(id - KEEP)]).await?;
    Ok(())
}

/// Records a dead-lettered delivery; a database that cannot take it is
/// logged (the refusal itself already was).
pub async fn record(state: &AppState, refusal: Refusal) {
    let recorded = match state.pool.get().await {
        Ok(client) => record_with(&client, &refusal).await.map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        tracing::error!(error = %format!("{e:#}"), queue = %refusal.queue, sender = refusal.sender.as_deref().unwrap_or("-"),
                        "Could not record a refused message.");
    }
}

/// Filters of the audit's listing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub queue: Option<String>,
    pub slave: Option<String>,
    pub sender: Option<String>,
    pub limit: Option<i64>,
}

/// The newest refusals matching `filter`, and how many match in all.
pub async fn list<C: GenericClient>(client: &C, filter: &Filter, limit: i64) -> Result<Value, tokio_postgres::Error> {
    const WHERE: &str = "($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR slave_id = $2) AND ($3::text IS NULL OR sender = $3)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&filter.queue, &filter.slave, &filter.sender];
    let total: i64 =
        client.query_one(&format!("SELECT count(*) FROM refused_messages WHERE {WHERE}"), &params).await?.get(0);
    let rows = client
        .query(
            &format!(
                "SELECT id, refused_at, queue, sender, slave_id, kind, message_id, reason FROM refused_messages
                  WHERE {WHERE} ORDER BY id DESC LIMIT $4"
            ),
            &[&filter.queue, &filter.slave, &filter.sender, &limit],
        )
        .await?;
    let messages: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"id": r.get::<_, i64>(0), "refused_at": r.get::<_, chrono::DateTime<chrono::Utc>>(1),
                   "queue": r.get::<_, Option<String>>(2), "sender": r.get::<_, Option<String>>(3),
                   "slave": r.get::<_, Option<String>>(4), "kind": r.get::<_, Option<String>>(5),
                   "message_id": r.get::<_, Option<String>>(6), "reason": r.get::<_, String>(7)})
        })
        .collect();
    Ok(json!({"total": total, "messages": messages}))
}
