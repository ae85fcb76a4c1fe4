//! Master side: the slaves as the master sees them, and removing one.
//!
//! A slave is `active` once registered ([`super::registration`]); the
//! master's removal makes it `removing` (its queue holds a
//! `master.unregister` for it) until the slave confirms with
//! `slave.unregistered` ([`super::status`]), which makes it `removed` and
//! deletes its queue. A slave that leaves on its own goes straight to
//! `removed` when its confirmation arrives.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    amqp::close_channel,
    db::CachedStatements,
    hierarchy::{MasterCommand, Unregister},
    topology,
};
use serde::Serialize;
use serde_json::Value;

use super::{to_slaves, OFFLINE_AFTER};
use crate::{
    operators::{activity, Actor},
    reports::{self, events::Touched},
    state::AppState,
};

/// A slave as `GET /api/slaves` shows it.
#[derive(Debug, Serialize)]
pub struct SlaveView {
    pub id: String,
    /// `online`, `offline`, `removing` or `removed`.
    pub state: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub endpoints: Option<i64>,
    /// The license usage the slave last reported, as it reported it.
    pub license: Option<Value>,
    pub removed_at: Option<DateTime<Utc>>,
    pub removed_reason: Option<String>,
    pub refused_messages: i64,
    pub replication: CopyView,
    /// Its site runs a broker of its own, linked to this master's.
    pub site_broker: bool,
    /// Its links' state as its last heartbeat reported it.
    pub links: Option<Value>,
    /// Its link user's connections and command queue on this master's
    /// broker (`slaves show` of a slave with a broker of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<super::link_users::SlaveBrokerView>,
}

/// The master's copy of one slave's data.
#[derive(Debug, Serialize)]
pub struct CopyView {
    pub epoch: i64,
    /// `xid:seq` of the last change applied.
    pub watermark: String,
    pub batches: i64,
    pub rows: i64,
    pub refused_batches: i64,
    pub last_replication: Option<DateTime<Utc>>,
    pub synced_as_of: Option<DateTime<Utc>>,
    pub rows_behind: Option<i64>,
    pub lag_seconds: Option<i64>,
    /// The slave's computers in the master's copy; not read by
    /// [`list_at_a_glance`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated_endpoints: Option<i64>,
}

/// How many slaves are online, offline and being removed (for `/api/status`).
#[derive(Debug, Serialize)]
pub struct StateCounts {
    pub online: i64,
    pub offline: i64,
    pub removing: i64,
}

/// What removing a slave did.
#[derive(Debug, Serialize)]
pub struct Removal {
    pub id: String,
    /// `removing`, or `removed` for a slave removed earlier.
    pub state: &'static str,
    pub message: String,
    pub replicated_rows_kept: i64,
    pub replicated_rows_purged: i64,
}

/// Why a slave cannot be shown or removed.
#[derive(Debug, thiserror::Error)]
pub enum SlaveError {
    #[error("no slave '{0}'")]
    Unknown(String),
    #[error("slave '{0}' was already removed")]
    AlreadyRemoved(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

pub(super) async fn delete_command_queue(state: &AppState, slave: &str) {
    let queue = state.site.topology.slave_commands_queue(slave);
    let deleted = match state.broker.channel().await {
        Ok(channel) => {
            let r = topology::delete_queue(&channel, &queue).await.map_err(|e| e.to_string());
            let _ = close_channel(&channel, "deleted").await;
            r
        }
        Err(e) => Err(e.to_string()),
    };
    match deleted {
        Ok(()) => tracing::info!(slave_id = slave, queue, "Deleted the command queue of a removed slave."),
        Err(e) => {
            tracing::warn!(slave_id = slave, queue, error = %e, "Could not delete the command queue of a removed slave.")
        }
    }
}

pub(super) async fn reload_keyring(state: &AppState) {
    let reloaded = match state.pool.get().await {
        Ok(client) => state.keyring.reload_slaves(&client).await.map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = reloaded {
        tracing::error!(error = %format!("{e:#}"), "Could not reload the slave keys; they reload at the next change.");
    }
}

/// Each slave's count of computers in the copy: over every slave it reads
/// every replicated computer (about 1 ms per 10,000: 170 ms for a master
/// holding 1M, `EXPLAIN ANALYZE`), so [`list_at_a_glance`] leaves it out.
const COPY_COUNT: &str =
    "(SELECT count(*) FROM replica_rows r WHERE r.slave_id = s.id AND r.table_name = 'endpoints' AND r.row IS NOT NULL)";

/// The columns [`slave_view`] reads, with `copy_count` as the copy's count
/// (`NULL::bigint` to leave it out), then `rest` (a filter, an order).
fn slave_select(copy_count: &str, rest: &str) -> String {
    format!(
        "SELECT s.id, s.state, s.last_seen, s.version, s.registered_at, s.endpoints, s.license,
            s.removed_at, s.removed_reason, s.last_seen > now() - make_interval(secs => $1::double precision),
            (SELECT count(*) FROM refused_messages f WHERE f.slave_id = s.id),
            s.repl_epoch, s.repl_xid, s.repl_seq, s.repl_batches, s.repl_rows, s.repl_refused, s.replicated_at,
            s.synced_as_of, s.rows_behind, extract(epoch FROM now() - s.synced_as_of)::double precision,
            {copy_count}, s.site_broker, s.links
        FROM slaves s {rest}"
    )
}

fn slave_view(r: &tokio_postgres::Row) -> SlaveView {
    let state = match (r.get::<_, &str>(1), r.get::<_, Option<bool>>(9)) {
        ("active", Some(true)) => "online",
        ("active", _) => "offline",
        (other, _) => other,
    };
    SlaveView {
        id: r.get(0),
        state: state.to_owned(),
        last_seen: r.get(2),
        version: r.get(3),
        registered_at: r.get(4),
        endpoints: r.get(5),
        license: r.get(6),
        removed_at: r.get(7),
        removed_reason: r.get(8),
        refused_messages: r.get(10),
        replication: CopyView {
            epoch: r.get(11),
            watermark: format!("{}:{}", r.get::<_, i64>(12), r.get::<_, i64>(13)),
            batches: r.get(14),
            rows: r.get(15),
            refused_batches: r.get(16),
            last_replication: r.get(17),
            synced_as_of: r.get(18),
            rows_behind: r.get(19),
            lag_seconds: r.get::<_, Option<f64>>(20).map(|s| s.max(0.0).round() as i64),
            replicated_endpoints: r.get(21),
        },
        site_broker: r.get(22),
        links: r.get(23),
        broker: None,
    }
}

/// Every active slave, by id.
pub async fn active_slaves<C: GenericClient>(client: &C) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query_cached("SELECT id FROM slaves WHERE state = 'active' ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<SlaveView>, tokio_postgres::Error> {
    let rows = client.query(&slave_select(COPY_COUNT, "ORDER BY s.id"), &[&OFFLINE_AFTER.as_secs_f64()]).await?;
    Ok(rows.iter().map(slave_view).collect())
}

/// [`list`] without each slave's count of computers in the copy
/// (`replicated_endpoints` is `None`), for views that do not show it and
/// are loaded often (the console's slaves page and tree).
pub async fn list_at_a_glance<C: GenericClient>(client: &C) -> Result<Vec<SlaveView>, tokio_postgres::Error> {
    let rows = client.query(&slave_select("NULL::bigint", "ORDER BY s.id"), &[&OFFLINE_AFTER.as_secs_f64()]).await?;
    Ok(rows.iter().map(slave_view).collect())
}

/// How many slaves are online, offline and being removed.
pub async fn state_counts<C: GenericClient>(client: &C) -> Result<StateCounts, tokio_postgres::Error> {
    let row = client
        .query_one_cached(
            "SELECT count(*) FILTER (WHERE state = 'active' AND last_seen > now() - make_interval(secs => $1::double precision)),
                    count(*) FILTER (WHERE state = 'active' AND (last_seen IS NULL OR last_seen <= now() - make_interval(secs => $1::double precision))),
                    count(*) FILTER (WHERE state = 'removing')
               FROM slaves",
            &[&OFFLINE_AFTER.as_secs_f64()],
        )
        .await?;
    Ok(StateCounts { online: row.get(0), offline: row.get(1), removing: row.get(2) })
}

pub async fn show<C: GenericClient>(client: &C, id: &str) -> Result<SlaveView, SlaveError> {
    let row = client
        .query_opt(&slave_select(COPY_COUNT, "WHERE s.id = $2"), &[&OFFLINE_AFTER.as_secs_f64(), &id])
        .await?
        .ok_or_else(|| SlaveError::Unknown(id.to_owned()))?;
    Ok(slave_view(&row))
}

/// The master drops a slave: it stops sending to it, cancels its tasks, and
/// queues a `master.unregister` the slave applies when it reads its queue.
/// Its replicated data stays (for reports over the past) unless `purge`;
/// purging also works on a slave removed earlier. With `force` the master
/// does not wait for the slave to confirm (a slave gone for good): it is
/// `removed` at once, its command queue and broker user deleted.
pub async fn remove(
    state: &AppState,
    actor: &Actor,
    id: &str,
    purge: bool,
    force: bool,
) -> Result<Removal, SlaveError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current: String = tx
        .query_opt_cached("SELECT state FROM slaves WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| SlaveError::Unknown(id.to_owned()))?
        .get(0);
    let mut message = match current.as_str() {
        "removed" if !purge => return Err(SlaveError::AlreadyRemoved(id.to_owned())),
        "removed" => format!("slave '{id}' was already removed"),
        "removing" if force => {
            force_removed(&tx, id).await?;
            format!("slave '{id}' removed at once, without waiting for it to confirm")
        }
        "removing" => {
            format!("slave '{id}' is already being removed; it becomes a stand-alone when it reads its queue")
        }
        _ if force => {
            force_removed(&tx, id).await?;
            cancel_open_receipts(&tx, id).await?;
            format!(
                "slave '{id}' removed at once, without waiting for it to confirm: its command queue and broker user \
                 are deleted; unregister it on its own server (`rampartctl unregister`)"
            )
        }
        _ => {
            let reason = "removed by the master's operator";
            tx.execute_cached(
                "UPDATE slaves SET state = 'removing', removed_at = now(), removed_reason = $2 WHERE id = $1",
                &[&id, &reason],
            )
            .await?;
            cancel_open_receipts(&tx, id).await?;
            let cmd = MasterCommand::Unregister(Unregister { reason: reason.into() });
            to_slaves::send(&tx, state, &[id.to_owned()], &cmd).await?;
            format!("slave '{id}' removed: the master sends it nothing more and refuses its messages; it becomes a stand-alone when it reads its queue")
        }
    };
    let (kept, purged) = if purge {
        let purged = tx.execute_cached("DELETE FROM replica_rows WHERE slave_id = $1", &[&id]).await?;
        tx.execute_cached(
            "UPDATE slaves SET repl_epoch = 0, repl_xid = 0, repl_seq = 0, synced_as_of = NULL WHERE id = $1",
            &[&id],
        )
        .await?;
        message.push_str(&format!("; its replicated data was purged ({purged} rows)"));
        (0, purged as i64)
    } else {
        let kept: i64 = tx
            .query_one_cached("SELECT count(*) FROM replica_rows WHERE slave_id = $1 AND row IS NOT NULL", &[&id])
            .await?
            .get(0);
        message.push_str(&format!("; its replicated data was kept ({kept} rows; purge it with --purge)"));
        (kept, 0)
    };
    let touched = if purge { Touched::everything() } else { Touched::health() };
    reports::events::queue_summary(&tx, state, id, touched).await?;
    let before = serde_json::json!({"state": current});
    let state_now = if current == "removed" || force { "removed" } else { "removing" };
    let after = serde_json::json!({"state": state_now, "purge": purge, "rows_kept": kept, "rows_purged": purged});
    activity::record(&tx, actor, "slave.remove", &format!("slave:{id}"), Some(before), Some(after)).await?;
    tx.commit().await?;
    reload_keyring(state).await;
    if force && current != "removed" {
        delete_command_queue(state, id).await;
        super::link_users::revoke(state, id).await;
    }
    state.wakes.outbox_relay.wake();
    tracing::info!(slave_id = id, purge, force, purged, kept, "Removing a slave.");
    Ok(Removal {
        id: id.to_owned(),
        state: state_now,
        message,
        replicated_rows_kept: kept,
        replicated_rows_purged: purged,
    })
}

/// Marks a slave removed without its confirmation.
async fn force_removed<C: GenericClient>(tx: &C, id: &str) -> Result<(), tokio_postgres::Error> {
    let reason = "removed by the master's operator without the slave's confirmation (--force)";
    tx.execute_cached(
        "UPDATE slaves SET state = 'removed', removed_at = COALESCE(removed_at, now()), removed_reason = $2 WHERE id = $1",
        &[&id, &reason],
    )
    .await?;
    Ok(())
}

/// A slave that leaves keeps no master policy and runs no master task:
/// its policy receipts and open task receipts say so.
pub(super) async fn cancel_open_receipts<C: GenericClient>(tx: &C, slave: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute_cached(
        "UPDATE receipts SET state = 'cancelled', reason = 'the slave left the hierarchy', updated_at = now()
          WHERE slave_id = $1 AND (object_kind = 'policy' OR state IN ('pending', 'delivered'))",
        &[&slave],
    )
    .await?;
    Ok(())
}
