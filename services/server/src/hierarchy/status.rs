//! Master side: applying what slaves report on `<ns>.master.status`
//! (heartbeats, receipts of policies and tasks, leaving).
//!
//! The consumer ([`crate::consumers`]) checks each message's sender and
//! signature; here a batch of verified reports is applied in one
//! transaction. A slave that confirms it left is marked `removed`, its
//! command queue deleted and its key dropped from the keyring.

use chrono::{DateTime, Utc};
use rampart_shared::{db::CachedStatements, hierarchy::SlaveReport};

use super::slaves::{cancel_open_receipts, delete_command_queue, reload_keyring};
use crate::{
    reports::{self, events::Touched},
    state::AppState,
};

/// A verified report from a slave.
pub struct Inbound {
    pub slave: String,
    pub seq: i64,
    /// When the slave sent it (heartbeats older than the last one applied change nothing).
    pub sent_at: DateTime<Utc>,
    pub report: SlaveReport,
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
                let links = h.links.as_ref().map(|l| serde_json::to_value(l).expect("link states serialize"));
                // Heartbeats are published directly (no outbox sequence):
                // the slave's send time orders them.
                tx.execute_cached(
                    "UPDATE slaves SET version = $2, endpoints = $3, license = $4, rows_behind = COALESCE($5, rows_behind),
                            heartbeat_sent_at = $6, links = $7
                      WHERE id = $1 AND state = 'active' AND (heartbeat_sent_at IS NULL OR heartbeat_sent_at < $6)",
                    &[slave, &h.version, &h.endpoints, &license, &rows_behind, &inbound.sent_at, &links],
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

/// Applies a batch of verified reports, then forgets the slaves that left.
pub async fn apply(state: &AppState, batch: &[Inbound]) -> anyhow::Result<()> {
    let removed = apply_reports(state, batch).await?;
    for slave in &removed {
        delete_command_queue(state, slave).await;
        super::link_users::revoke(state, slave).await;
    }
    if !removed.is_empty() {
        reload_keyring(state).await;
    }
    Ok(())
}
