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
//!
//! View fields are declared in the order the API has always answered them
//! (alphabetical), so the JSON stays byte for byte the same.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use lapin::message::Delivery;
use rampart_shared::{compression, envelope, replication::MAX_REPLICATION_BYTES};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

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
        // A compressed body is read as the consumer read it, within the
        // largest limit a consumer has (it was read once already).
        let encoding = envelope::content_encoding(&delivery.properties);
        let body = compression::decompress(&delivery.data, encoding, MAX_REPLICATION_BYTES).ok();
        let sender = body.and_then(|b| serde_json::from_slice::<Sender>(&b).ok()).and_then(|s| s.from);
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

/// One refusal as the audit lists it.
#[derive(Debug, Serialize)]
pub struct RefusedMessage {
    pub id: i64,
    pub kind: Option<String>,
    pub message_id: Option<String>,
    pub queue: Option<String>,
    pub reason: String,
    pub refused_at: DateTime<Utc>,
    pub sender: Option<String>,
    pub slave: Option<String>,
}

impl RefusedMessage {
    fn from_row(r: &Row) -> Self {
        Self {
            id: r.get(0),
            refused_at: r.get(1),
            queue: r.get(2),
            sender: r.get(3),
            slave: r.get(4),
            kind: r.get(5),
            message_id: r.get(6),
            reason: r.get(7),
        }
    }
}

/// A page of the audit: the newest refusals, and how many match in all.
#[derive(Debug, Serialize)]
pub struct RefusedPage {
    pub messages: Vec<RefusedMessage>,
    pub total: i64,
}

/// Why the audit could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// The newest `limit` refusals matching `filter`, and how many match in all.
pub async fn list(state: &AppState, filter: &Filter, limit: i64) -> Result<RefusedPage, AuditError> {
    const WHERE: &str = "($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR slave_id = $2) AND ($3::text IS NULL OR sender = $3)";
    let client = state.pool.get().await?;
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
    Ok(RefusedPage { messages: rows.iter().map(RefusedMessage::from_row).collect(), total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_answers_with_its_fields_in_order() {
        let refused_at = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc);
        let message = RefusedMessage {
            id: 7,
            kind: Some("heartbeat".into()),
            message_id: None,
            queue: Some("rampart.site-a.inbox".into()),
            reason: "malformed".into(),
            refused_at,
            sender: None,
            slave: None,
        };
        assert_eq!(
            serde_json::to_string(&RefusedPage { messages: vec![message], total: 1 }).unwrap(),
            r#"{"messages":[{"id":7,"kind":"heartbeat","message_id":null,"queue":"rampart.site-a.inbox","#.to_owned()
                + r#""reason":"malformed","refused_at":"2026-11-26T10:00:00Z","sender":null,"slave":null}],"total":1}"#
        );
    }
}
