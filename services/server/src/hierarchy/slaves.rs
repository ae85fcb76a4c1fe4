//! Master side: registering slaves, listing and removing them, and the
//! status inbox where their signed reports arrive.
//!
//! A slave is `active` once registered; the master's removal makes it
//! `removing` (its queue holds a `master.unregister` for it) until the slave
//! confirms with `slave.unregistered`, which makes it `removed` and deletes
//! its queue. A slave that leaves on its own goes straight to `removed` when
//! its confirmation arrives. Anything else a removed slave sends is refused
//! and recorded in `refused_messages`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use lapin::message::Delivery;
use rampart_shared::{
    amqp::{
        close_channel,
        consumer::{ApplyError, BatchHandler},
    },
    db::CachedStatements,
    envelope::{self, header_str, Rejection, SIGNATURE_HEADER},
    hierarchy::{MasterCommand, RegisterRequest, RegisterResponse, SlaveReport, Unregister},
    signing::SigningKey,
    topology::{self, NameSegment, Topology},
    Envelope,
};
use serde_json::{json, Value};

use super::{fanout, tokens, SlaveEntry, OFFLINE_AFTER};
use crate::{
    api::ApiError,
    refused,
    reports::{self, events::Touched},
    role::Role,
    state::AppState,
};

/// Registers a slave: checks the token, records the slave, declares its
/// command queue and issues its keys, all or nothing.
pub async fn register(state: &AppState, request: RegisterRequest) -> Result<RegisterResponse, ApiError> {
    let role = state.role();
    if role != Role::Master {
        return Err(ApiError::Conflict(format!(
            "this server ('{}') is a {role} server, not a master: register to a master",
            state.site.instance
        )));
    }
    let slave = NameSegment::parse(request.slave_id.trim())
        .map_err(|e| ApiError::Invalid(format!("slave_id {e}")))?
        .to_string();
    check_request(&request).map_err(ApiError::Invalid)?;
    if slave == state.site.instance {
        return Err(ApiError::Conflict(format!(
            "'{slave}' is this master's own name; a slave needs another instance name"
        )));
    }
    let namespace = state.site.topology.namespace();
    if request.namespace != namespace {
        return Err(ApiError::Conflict(format!(
            "the slave uses AMQP namespace '{}' but this master uses '{namespace}'; set the same <Broker><Namespace> on both",
            request.namespace
        )));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(row) =
        tx.query_opt_cached("SELECT state, registered_at FROM slaves WHERE id = $1 FOR UPDATE", &[&slave]).await?
    {
        if row.get::<_, &str>(0) != "removed" {
            return Err(ApiError::Conflict(format!(
                "slave '{slave}' is already registered to this master (since {}); unregister it first",
                row.get::<_, DateTime<Utc>>(1)
            )));
        }
    }
    tokens::consume(&tx, &request.token, &slave).await?.map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let slave_key = SigningKey::generate();
    let heartbeat = &request.heartbeat;
    let license = heartbeat.license.as_ref().map(|l| serde_json::to_value(l).expect("license usage serializes"));
    tx.execute_cached(
        "INSERT INTO slaves (id, state, slave_key, version, endpoints, license, registered_at, last_seen)
         VALUES ($1, 'active', $2, $3, $4, $5, now(), now())
         ON CONFLICT (id) DO UPDATE SET state = 'active', slave_key = excluded.slave_key, version = excluded.version,
             endpoints = excluded.endpoints, license = excluded.license, registered_at = now(), last_seen = now(),
             removed_at = NULL, removed_reason = NULL, heartbeat_sent_at = NULL,
             repl_epoch = 0, repl_xid = 0, repl_seq = 0, synced_as_of = NULL, rows_behind = NULL",
        &[&slave, &slave_key.to_hex(), &request.version, &heartbeat.endpoints, &license],
    )
    .await?;
    // A re-registered slave may come back with a fresh database whose
    // message numbers start again: receipts compare against this registration only.
    tx.execute_cached("UPDATE receipts SET seq = 0 WHERE slave_id = $1", &[&slave]).await?;
    declare_command_queue(state, &slave).await?;
    let command_key = state
        .keyring
        .command_key_for(&slave)
        .ok_or_else(|| anyhow::anyhow!("this master has no key (instance.master_key is empty)"))?;
    let policies = fanout::welcome(&tx, state, &slave).await?;
    reports::events::queue_summary(&tx, state, &slave, Touched::health()).await?;
    tx.commit().await?;
    reload_keyring(state).await;
    state.outbox_wake.notify_one();
    tracing::info!(slave_id = %slave, version = %request.version, policies, "Registered a slave.");
    Ok(RegisterResponse {
        master_id: state.site.instance.clone(),
        slave_key: slave_key.to_hex(),
        command_key: command_key.to_hex(),
    })
}

/// What the types of a registration do not say: versions that are short
/// text, counts that are not negative (it is checked before the token is
/// used, so a refused request leaves it unused).
fn check_request(request: &RegisterRequest) -> Result<(), String> {
    for (field, version) in [("version", &request.version), ("heartbeat.version", &request.heartbeat.version)] {
        if version.trim().is_empty() || version.len() > 64 {
            return Err(format!("{field} must be 1 to 64 characters"));
        }
    }
    let heartbeat = &request.heartbeat;
    if heartbeat.endpoints < 0 {
        return Err(format!("heartbeat.endpoints is {}: a count cannot be negative", heartbeat.endpoints));
    }
    if heartbeat.license.as_ref().is_some_and(|l| l.seats < 0 || l.used < 0) {
        return Err("heartbeat.license: seats and used cannot be negative".into());
    }
    Ok(())
}

async fn declare_command_queue(state: &AppState, slave: &str) -> Result<(), ApiError> {
    let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("the broker is unavailable: {e}"));
    let channel = state.broker.channel().await.map_err(|e| unavailable(&e))?;
    let topo = &state.site.topology;
    let bindings = [Topology::slave_key(slave), Topology::ALL_SLAVES_KEY.to_owned()];
    let declared = topology::declare_queue(
        &channel,
        topo,
        &topo.slave_commands_queue(slave),
        &topo.commands_exchange(),
        &bindings,
    )
    .await;
    let _ = close_channel(&channel, "declared").await;
    declared.map_err(|e| unavailable(&e))
}

async fn delete_command_queue(state: &AppState, slave: &str) {
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

async fn reload_keyring(state: &AppState) {
    let reloaded = match state.pool.get().await {
        Ok(client) => state.keyring.reload_slaves(&client).await.map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = reloaded {
        tracing::error!(error = %format!("{e:#}"), "Could not reload the slave keys; they reload at the next change.");
    }
}

const SLAVE_SELECT: &str = "SELECT s.id, s.state, s.last_seen, s.version, s.registered_at, s.endpoints, s.license,
        s.removed_at, s.removed_reason, s.last_seen > now() - make_interval(secs => $1::double precision),
        (SELECT count(*) FROM refused_messages f WHERE f.slave_id = s.id),
        s.repl_epoch, s.repl_xid, s.repl_seq, s.repl_batches, s.repl_rows, s.repl_refused, s.replicated_at,
        s.synced_as_of, s.rows_behind, extract(epoch FROM now() - s.synced_as_of)::double precision,
        (SELECT count(*) FROM replica_rows r WHERE r.slave_id = s.id AND r.table_name = 'endpoints' AND r.row IS NOT NULL)
    FROM slaves s";

fn slave_json(r: &tokio_postgres::Row) -> Value {
    let state = match (r.get::<_, &str>(1), r.get::<_, Option<bool>>(9)) {
        ("active", Some(true)) => "online",
        ("active", _) => "offline",
        (other, _) => other,
    };
    json!({"id": r.get::<_, String>(0), "state": state, "last_seen": r.get::<_, Option<DateTime<Utc>>>(2),
    "version": r.get::<_, Option<String>>(3), "registered_at": r.get::<_, DateTime<Utc>>(4),
    "endpoints": r.get::<_, Option<i64>>(5), "license": r.get::<_, Option<Value>>(6),
    "removed_at": r.get::<_, Option<DateTime<Utc>>>(7), "removed_reason": r.get::<_, Option<String>>(8),
    "refused_messages": r.get::<_, i64>(10),
    "replication": {
        "epoch": r.get::<_, i64>(11), "watermark": format!("{}:{}", r.get::<_, i64>(12), r.get::<_, i64>(13)),
        "batches": r.get::<_, i64>(14), "rows": r.get::<_, i64>(15), "refused_batches": r.get::<_, i64>(16),
        "last_replication": r.get::<_, Option<DateTime<Utc>>>(17), "synced_as_of": r.get::<_, Option<DateTime<Utc>>>(18),
        "rows_behind": r.get::<_, Option<i64>>(19), "lag_seconds": r.get::<_, Option<f64>>(20).map(|s| s.max(0.0).round() as i64),
        "replicated_endpoints": r.get::<_, i64>(21),
    }})
}

pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<Value>, tokio_postgres::Error> {
    let rows = client.query(&format!("{SLAVE_SELECT} ORDER BY s.id"), &[&OFFLINE_AFTER.as_secs_f64()]).await?;
    Ok(rows.iter().map(slave_json).collect())
}

/// How many slaves are online, offline and being removed (for `/api/status`).
pub async fn state_counts<C: GenericClient>(client: &C) -> Result<Value, tokio_postgres::Error> {
    let row = client
        .query_one_cached(
            "SELECT count(*) FILTER (WHERE state = 'active' AND last_seen > now() - make_interval(secs => $1::double precision)),
                    count(*) FILTER (WHERE state = 'active' AND (last_seen IS NULL OR last_seen <= now() - make_interval(secs => $1::double precision))),
                    count(*) FILTER (WHERE state = 'removing')
               FROM slaves",
            &[&OFFLINE_AFTER.as_secs_f64()],
        )
        .await?;
    Ok(json!({"online": row.get::<_, i64>(0), "offline": row.get::<_, i64>(1), "removing": row.get::<_, i64>(2)}))
}

pub async fn show<C: GenericClient>(client: &C, id: &str) -> Result<Value, ApiError> {
    let row = client
        .query_opt(&format!("{SLAVE_SELECT} WHERE s.id = $2"), &[&OFFLINE_AFTER.as_secs_f64(), &id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no slave '{id}'")))?;
    Ok(slave_json(&row))
}

/// The master drops a slave: it stops sending to it, cancels its tasks, and
/// queues a `master.unregister` the slave applies when it reads its queue.
/// Its replicated data stays (for reports over the past) unless `purge`;
/// purging also works on a slave removed earlier.
pub async fn remove(state: &AppState, id: &str, purge: bool) -> Result<Value, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current: String = tx
        .query_opt_cached("SELECT state FROM slaves WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no slave '{id}'")))?
        .get(0);
    let mut message = match current.as_str() {
        "removed" if !purge => return Err(ApiError::Conflict(format!("slave '{id}' was already removed"))),
        "removed" => format!("slave '{id}' was already removed"),
        "removing" => {
            format!("slave '{id}' is already being removed; it becomes a stand-alone when it reads its queue")
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
            fanout::send(&tx, state, &[id.to_owned()], &cmd).await?;
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
    tx.commit().await?;
    reload_keyring(state).await;
    state.outbox_wake.notify_one();
    tracing::info!(slave_id = id, purge, purged, kept, "Removing a slave.");
    let state_now = if current == "removed" { "removed" } else { "removing" };
    Ok(
        json!({"id": id, "state": state_now, "message": message, "replicated_rows_kept": kept, "replicated_rows_purged": purged}),
    )
}

/// A slave that leaves keeps no master policy and runs no master task:
/// its policy receipts and open task receipts say so.
async fn cancel_open_receipts<C: GenericClient>(tx: &C, slave: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute_cached(
        "UPDATE receipts SET state = 'cancelled', reason = 'the slave left the hierarchy', updated_at = now()
          WHERE slave_id = $1 AND (object_kind = 'policy' OR state IN ('pending', 'delivered'))",
        &[&slave],
    )
    .await?;
    Ok(())
}

/// Decodes a message from a slave and checks that the routing key names the
/// sender, that the sender is a slave of this master, and its signature.
pub fn authenticate(state: &AppState, delivery: &Delivery, limit: usize) -> Result<(Envelope, SlaveEntry), Rejection> {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    let envelope = Envelope::decode_limited(&delivery.data, kind, limit)?;
    let claimed = Topology::slave_of_key(delivery.routing_key.as_str()).unwrap_or_default();
    if envelope.from != claimed {
        return Err(Rejection::UnknownSender(format!("{} (published as slave '{claimed}')", envelope.from)));
    }
    let entry = state.keyring.slave(&envelope.from).ok_or_else(|| {
        Rejection::UnknownSender(format!("{} (not a registered slave of this master)", envelope.from))
    })?;
    let signature = header_str(&delivery.properties, SIGNATURE_HEADER).ok_or(Rejection::BadSignature)?;
    if !entry.key.verify(&delivery.data, signature) {
        return Err(Rejection::BadSignature);
    }
    Ok((envelope, entry))
}

/// A verified report from a slave.
pub struct Inbound {
    pub slave: String,
    pub seq: i64,
    /// When the slave sent it (heartbeats older than the last one applied change nothing).
    pub sent_at: DateTime<Utc>,
    pub report: SlaveReport,
}

/// The [`BatchHandler`] of `<ns>.master.status`.
pub struct StatusInbox {
    pub state: Arc<AppState>,
}

impl BatchHandler for StatusInbox {
    type Message = Inbound;

    fn decode(&self, delivery: &Delivery) -> Result<Inbound, Rejection> {
        let (envelope, entry) = authenticate(&self.state, delivery, envelope::MAX_MESSAGE_BYTES)?;
        let report = SlaveReport::from_envelope(&envelope)?;
        if entry.removing && !matches!(report, SlaveReport::Unregistered(_)) {
            return Err(Rejection::UnknownSender(format!("{} (removed from this master)", envelope.from)));
        }
        Ok(Inbound {
            slave: envelope.from,
            seq: i64::try_from(envelope.seq).unwrap_or(i64::MAX),
            sent_at: envelope.sent_at,
            report,
        })
    }

    async fn apply(&self, batch: &[Inbound]) -> Result<(), ApplyError> {
        let removed = apply_reports(&self.state, batch).await.map_err(crate::inbox::classify)?;
        for slave in &removed {
            delete_command_queue(&self.state, slave).await;
        }
        if !removed.is_empty() {
            reload_keyring(&self.state).await;
        }
        Ok(())
    }

    async fn refused(&self, delivery: &Delivery, reason: &str) {
        record_refused(&self.state, delivery, reason).await;
    }
}

/// Records a message refused on `<ns>.master.status` or
/// `<ns>.master.replication` in the audit, with the slave its routing key names.
pub async fn record_refused(state: &AppState, delivery: &Delivery, reason: &str) {
    let topology = &state.site.topology;
    let queue = match delivery.exchange.as_str() {
        "" => delivery.routing_key.to_string(),
        exchange if exchange == topology.replication_exchange() => topology.master_replication_queue(),
        _ => topology.master_status_queue(),
    };
    let slave = Topology::slave_of_key(delivery.routing_key.as_str());
    refused::record(state, refused::Refusal::of_delivery(&queue, delivery, slave, reason)).await;
}

/// Applies reports in one transaction; returns the slaves that left.
async fn apply_reports(state: &AppState, batch: &[Inbound]) -> anyhow::Result<Vec<String>> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let mut removed = Vec::new();
    let mut heard: Vec<&str> = batch.iter().map(|i| i.slave.as_str()).collect();
    heard.sort_unstable();
    heard.dedup();
    tx.execute_cached("UPDATE slaves SET last_seen = now() WHERE id = ANY($1) AND state = 'active'", &[&heard]).await?;
    for inbound in batch {
        let slave = &inbound.slave;
        match &inbound.report {
            SlaveReport::Heartbeat(h) => {
                let license = h.license.as_ref().map(|l| serde_json::to_value(l).expect("license usage serializes"));
                let rows_behind = h.replication.as_ref().map(|r| r.rows_behind);
                // Heartbeats are published directly (no outbox sequence):
                // the slave's send time orders them.
                tx.execute_cached(
                    "UPDATE slaves SET version = $2, endpoints = $3, license = $4, rows_behind = COALESCE($5, rows_behind),
                            heartbeat_sent_at = $6
                      WHERE id = $1 AND state = 'active' AND (heartbeat_sent_at IS NULL OR heartbeat_sent_at < $6)",
                    &[slave, &h.version, &h.endpoints, &license, &rows_behind, &inbound.sent_at],
                )
                .await?;
            }
            SlaveReport::Receipt(r) => {
                let progress = match (&r.policy, &r.task) {
                    (Some(p), _) => Some(serde_json::to_value(p)?),
                    (_, Some(t)) => Some(serde_json::to_value(t)?),
                    _ => None,
                };
                tx.execute_cached(
                    "UPDATE receipts SET version = $4, state = $5, reason = $6, progress = COALESCE($7, progress),
                            seq = $8, updated_at = now()
                      WHERE object_kind = $1 AND object_id = $2 AND slave_id = $3 AND version <= $4 AND seq < $8",
                    &[
                        &r.object.as_str(),
                        &r.id,
                        slave,
                        &r.version,
                        &r.state.as_str(),
                        &r.reason,
                        &progress,
                        &inbound.seq,
                    ],
                )
                .await?;
            }
            SlaveReport::Unregistered(u) => {
                let changed = tx
                    .execute_cached(
                        "UPDATE slaves SET state = 'removed', removed_at = COALESCE(removed_at, now()),
                                removed_reason = COALESCE(removed_reason, $2)
                          WHERE id = $1 AND state <> 'removed'",
                        &[slave, &u.reason],
                    )
                    .await?;
                if changed > 0 {
                    cancel_open_receipts(&tx, slave).await?;
                    reports::events::queue_summary(&tx, state, slave, Touched::health()).await?;
                    tracing::info!(slave_id = %slave, reason = %u.reason, "A slave left the hierarchy.");
                    removed.push(slave.clone());
                }
            }
        }
    }
    tx.commit().await?;
    Ok(removed)
}
