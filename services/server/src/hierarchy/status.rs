//! Master side: applying what slaves report on `<ns>.master.status`
//! (heartbeats, receipts of policies and tasks, leaving).
//!
//! The consumer ([`crate::consumers`]) checks each message's sender and
//! signature; here a batch of verified reports is applied in one
//! transaction. A slave that confirms it left is marked `removed`, its
//! command queue deleted and its key dropped from the keyring.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rampart_shared::{
    db::CachedStatements,
    hierarchy::{Receipt, SlaveHeartbeat, SlaveReport},
};
use uuid::Uuid;

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
///
/// A batch from 1,000 slaves holds hundreds of heartbeats and receipts: each
/// kind is one statement over the batch (a statement per report made a
/// master policy's receipts from 1,000 slaves take seconds to record). The
/// reports before a departure apply before it, those after it after it, as
/// one at a time would.
async fn apply_reports(state: &AppState, batch: &[Inbound]) -> anyhow::Result<Vec<String>> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let mut heard: Vec<&str> = batch.iter().map(|i| i.slave.as_str()).collect();
    heard.sort_unstable();
    heard.dedup();
    tx.execute_cached("UPDATE slaves SET last_seen = now() WHERE id = ANY($1) AND state = 'active'", &[&heard]).await?;
    let mut removed = Vec::new();
    for (reports, departure) in segments(batch) {
        record_heartbeats(&tx, &latest_heartbeats(reports)).await?;
        for round in receipt_rounds(reports) {
            record_receipts(&tx, &round).await?;
        }
        if let Some((slave, reason)) = departure {
            if record_departure(&tx, state, slave, reason).await? {
                removed.push(slave.to_owned());
            }
        }
    }
    tx.commit().await?;
    Ok(removed)
}

/// The batch cut after each departure: the reports before it, and the
/// departing slave with its reason.
fn segments(batch: &[Inbound]) -> impl Iterator<Item = (&[Inbound], Option<(&str, &str)>)> {
    batch.split_inclusive(|i| matches!(i.report, SlaveReport::Unregistered(_))).map(|segment| {
        match segment.split_last() {
            Some((Inbound { slave, report: SlaveReport::Unregistered(u), .. }, before)) => {
                (before, Some((slave.as_str(), u.reason.as_str())))
            }
            _ => (segment, None),
        }
    })
}

/// Each slave's newest heartbeat of `reports` (by the slave's send time; of
/// two sent at the same time the first): applying only it leaves what
/// applying them all in turn would.
fn latest_heartbeats(reports: &[Inbound]) -> Vec<(&Inbound, &SlaveHeartbeat)> {
    let mut latest: Vec<(&Inbound, &SlaveHeartbeat)> = Vec::new();
    for inbound in reports {
        let SlaveReport::Heartbeat(h) = &inbound.report else { continue };
        match latest.iter_mut().find(|(seen, _)| seen.slave == inbound.slave) {
            Some(seen) if seen.0.sent_at < inbound.sent_at => *seen = (inbound, h),
            Some(_) => {}
            None => latest.push((inbound, h)),
        }
    }
    latest
}

/// Heartbeats are published directly (no outbox sequence): the slave's send
/// time orders them, and an older one than the last applied changes nothing.
async fn record_heartbeats<C: CachedStatements>(
    tx: &C,
    heartbeats: &[(&Inbound, &SlaveHeartbeat)],
) -> anyhow::Result<()> {
    if heartbeats.is_empty() {
        return Ok(());
    }
    let mut slaves = Vec::with_capacity(heartbeats.len());
    let mut versions = Vec::with_capacity(heartbeats.len());
    let mut endpoints = Vec::with_capacity(heartbeats.len());
    let mut licenses = Vec::with_capacity(heartbeats.len());
    let mut rows_behind = Vec::with_capacity(heartbeats.len());
    let mut sent_at = Vec::with_capacity(heartbeats.len());
    let mut links = Vec::with_capacity(heartbeats.len());
    for (inbound, h) in heartbeats {
        slaves.push(inbound.slave.as_str());
        versions.push(h.version.as_str());
        endpoints.push(h.endpoints);
        licenses.push(h.license.as_ref().map(serde_json::to_value).transpose()?);
        rows_behind.push(h.replication.as_ref().map(|r| r.rows_behind));
        sent_at.push(inbound.sent_at);
        links.push(h.links.as_ref().map(serde_json::to_value).transpose()?);
    }
    tx.execute_cached(
        "UPDATE slaves s SET version = h.version, endpoints = h.endpoints, license = h.license,
                rows_behind = COALESCE(h.rows_behind, s.rows_behind), heartbeat_sent_at = h.sent_at, links = h.links
           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::jsonb[], $5::bigint[], $6::timestamptz[], $7::jsonb[])
                AS h(slave, version, endpoints, license, rows_behind, sent_at, links)
          WHERE s.id = h.slave AND s.state = 'active' AND (s.heartbeat_sent_at IS NULL OR s.heartbeat_sent_at < h.sent_at)",
        &[&slaves, &versions, &endpoints, &licenses, &rows_behind, &sent_at, &links],
    )
    .await?;
    Ok(())
}

/// The receipts of `reports` in rounds: the first receipt of every
/// (object, slave) in the first round, the second in the next, and so on.
/// Receipts of different objects or slaves change different rows, so a
/// round applied at once leaves what applying them in turn would.
fn receipt_rounds(reports: &[Inbound]) -> Vec<Vec<(&Inbound, &Receipt)>> {
    let mut rounds: Vec<Vec<(&Inbound, &Receipt)>> = Vec::new();
    let mut seen: HashMap<(&str, Uuid, &str), usize> = HashMap::new();
    for inbound in reports {
        let SlaveReport::Receipt(r) = &inbound.report else { continue };
        let count = seen.entry((r.object.as_str(), r.id, inbound.slave.as_str())).or_default();
        if rounds.len() == *count {
            rounds.push(Vec::new());
        }
        rounds[*count].push((inbound, r));
        *count += 1;
    }
    rounds
}

/// A receipt older than the last applied (by the slave's outbox sequence),
/// or of an older version, changes nothing.
async fn record_receipts<C: CachedStatements>(tx: &C, receipts: &[(&Inbound, &Receipt)]) -> anyhow::Result<()> {
    let mut kinds = Vec::with_capacity(receipts.len());
    let mut ids = Vec::with_capacity(receipts.len());
    let mut slaves = Vec::with_capacity(receipts.len());
    let mut versions = Vec::with_capacity(receipts.len());
    let mut states = Vec::with_capacity(receipts.len());
    let mut reasons = Vec::with_capacity(receipts.len());
    let mut progress = Vec::with_capacity(receipts.len());
    let mut seqs = Vec::with_capacity(receipts.len());
    for (inbound, r) in receipts {
        kinds.push(r.object.as_str());
        ids.push(r.id);
        slaves.push(inbound.slave.as_str());
        versions.push(r.version);
        states.push(r.state.as_str());
        reasons.push(r.reason.as_deref());
        progress.push(match (&r.policy, &r.task) {
            (Some(p), _) => Some(serde_json::to_value(p)?),
            (_, Some(t)) => Some(serde_json::to_value(t)?),
            _ => None,
        });
        seqs.push(inbound.seq);
    }
    tx.execute_cached(
        "UPDATE receipts r SET version = u.version, state = u.state, reason = u.reason,
                progress = COALESCE(u.progress, r.progress), seq = u.seq, updated_at = now()
           FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::jsonb[], $8::bigint[])
                AS u(object_kind, object_id, slave_id, version, state, reason, progress, seq)
          WHERE r.object_kind = u.object_kind AND r.object_id = u.object_id AND r.slave_id = u.slave_id
            AND r.version <= u.version AND r.seq < u.seq",
        &[&kinds, &ids, &slaves, &versions, &states, &reasons, &progress, &seqs],
    )
    .await?;
    Ok(())
}

/// Marks `slave` removed (its open receipts cancelled, the report service
/// told); whether it was not already.
async fn record_departure<C: CachedStatements>(
    tx: &C,
    state: &AppState,
    slave: &str,
    reason: &str,
) -> anyhow::Result<bool> {
    let changed = tx
        .execute_cached(
            "UPDATE slaves SET state = 'removed', removed_at = COALESCE(removed_at, now()),
                    removed_reason = COALESCE(removed_reason, $2)
              WHERE id = $1 AND state <> 'removed'",
            &[&slave, &reason],
        )
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    cancel_open_receipts(tx, slave).await?;
    reports::events::queue_summary(tx, state, slave, Touched::health()).await?;
    tracing::info!(slave_id = %slave, reason = %reason, "A slave left the hierarchy.");
    Ok(true)
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rampart_shared::hierarchy::{ReceiptObject, ReceiptState, Unregistered};

    use super::*;

    fn inbound(slave: &str, seq: i64, second: u32, report: SlaveReport) -> Inbound {
        let sent_at = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, second).unwrap();
        Inbound { slave: slave.into(), seq, sent_at, report }
    }

    fn heartbeat(slave: &str, second: u32, version: &str) -> Inbound {
        let h = SlaveHeartbeat { version: version.into(), endpoints: 1, license: None, replication: None, links: None };
        inbound(slave, 0, second, SlaveReport::Heartbeat(h))
    }

    fn receipt(slave: &str, seq: i64, id: Uuid, state: ReceiptState) -> Inbound {
        let r =
            Receipt { object: ReceiptObject::Policy, id, version: 1, state, reason: None, policy: None, task: None };
        inbound(slave, seq, 0, SlaveReport::Receipt(r))
    }

    fn left(slave: &str) -> Inbound {
        inbound(slave, 9, 0, SlaveReport::Unregistered(Unregistered { reason: "closed".into() }))
    }

    #[test]
    fn reports_before_a_departure_apply_before_it_and_the_rest_after() {
        let batch = [heartbeat("paris", 1, "1"), left("lyon"), heartbeat("lyon", 2, "1"), heartbeat("nice", 3, "1")];
        let cut: Vec<(usize, Option<&str>)> = segments(&batch).map(|(r, d)| (r.len(), d.map(|d| d.0))).collect();
        assert_eq!(cut, vec![(1, Some("lyon")), (2, None)]);
        let only = [left("lyon")];
        assert_eq!(
            segments(&only).map(|(r, d)| (r.len(), d.map(|d| d.1))).collect::<Vec<_>>(),
            vec![(0, Some("closed"))]
        );
        assert_eq!(segments(&[]).count(), 0);
    }

    #[test]
    fn only_each_slaves_newest_heartbeat_is_recorded() {
        let batch = [
            heartbeat("paris", 5, "new"),
            heartbeat("lyon", 1, "first"),
            heartbeat("paris", 3, "older"),
            heartbeat("lyon", 1, "same time, later"),
            receipt("paris", 1, Uuid::new_v4(), ReceiptState::Applied),
        ];
        let latest: Vec<(&str, &str)> =
            latest_heartbeats(&batch).iter().map(|(i, h)| (i.slave.as_str(), h.version.as_str())).collect();
        assert_eq!(latest, vec![("paris", "new"), ("lyon", "first")]);
    }

    #[test]
    fn receipts_of_one_object_and_slave_go_in_successive_rounds() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let batch = [
            receipt("paris", 1, a, ReceiptState::Delivered),
            receipt("lyon", 1, a, ReceiptState::Applied),
            receipt("paris", 2, a, ReceiptState::Applied),
            receipt("paris", 3, b, ReceiptState::Applied),
            heartbeat("paris", 1, "1"),
            receipt("paris", 4, a, ReceiptState::Failed),
        ];
        let rounds: Vec<Vec<(&str, i64)>> = receipt_rounds(&batch)
            .iter()
            .map(|round| round.iter().map(|(i, _)| (i.slave.as_str(), i.seq)).collect())
            .collect();
        assert_eq!(rounds, vec![vec![("paris", 1), ("lyon", 1), ("paris", 3)], vec![("paris", 2)], vec![("paris", 4)]]);
        assert!(receipt_rounds(&[heartbeat("paris", 1, "1")]).is_empty());
    }
}
