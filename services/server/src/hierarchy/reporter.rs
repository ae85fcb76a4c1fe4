//! Slave side: what the slave tells its master on `<ns>.status`.
//!
//! A heartbeat every [`HEARTBEAT_INTERVAL`](super::HEARTBEAT_INTERVAL)
//! (published directly: a lost one is replaced by the next), and a receipt
//! whenever a master policy or task changes state or progress (through the
//! outbox, in the transaction that records what was reported, so none is
//! lost or sent twice in effect). Every message is signed with the slave key.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::GenericClient;
use rampart_shared::{
    amqp::{
        publisher::{Outgoing, Publisher},
        Broker,
    },
    db::CachedStatements,
    hierarchy::{
        LicenseUsage, PolicyProgress, Receipt, ReceiptObject, ReceiptState, SlaveHeartbeat, SlaveReport, TaskProgress,
    },
    topology::Topology,
    Shutdown,
};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::{MasterLink, HEARTBEAT_INTERVAL};
use crate::{licensing, outbox, state::AppState};

/// Shortest time between two looks at the progress after agents' reports:
/// a busy inbox wakes the reporter after every batch, and one look a second
/// is enough. A master command is looked at after [`REPORT_SETTLE`] alone:
/// the master (and its operator) waits for those receipts, and master
/// commands come one operator action at a time. Waiting out the second
/// after the previous look held each receipt of a policy round up to a
/// second when rounds followed each other (the benchmark's receipts figure
/// read about 1.0 s where the last slave had committed within 50 ms).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How long the reporter waits after being woken before it looks: the
/// commands and agent reports of a burst land in one look and one receipt
/// transaction, after the burst, instead of one look per change racing the
/// applies still to come.
const REPORT_SETTLE: Duration = Duration::from_millis(200);
/// Longest time between two looks when nothing woke the reporter. What
/// changes the progress wakes it (master commands, agents' heartbeats and
/// task results); this catches anything else. Looking every second on an
/// idle slave joined every computer with every master policy for nothing
/// (the benchmark's 100 idle slaves spent a good part of the machine on it).
const IDLE_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Reports to the master until `stop`.
pub async fn run(state: Arc<AppState>, broker: Arc<Broker>, stop: Shutdown) {
    let publisher = Publisher::new(broker);
    let mut next_heartbeat = Instant::now();
    loop {
        if Instant::now() >= next_heartbeat {
            if let Err(e) = send_heartbeat(&state, &publisher).await {
                tracing::warn!(error = %format!("{e:#}"), "Could not send a heartbeat to the master.");
            }
            next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
        }
        let looked = Instant::now();
        match report_progress(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(receipts = n, "Reported progress to the master."),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "Could not report progress to the master; retrying."),
        }
        tokio::select! {
            _ = stop.wait() => break,
            _ = state.wakes.master_receipts.woken() => {
                if !stop.sleep(REPORT_SETTLE).await {
                    break;
                }
            }
            _ = state.wakes.reporter.woken() => {
                if !stop.sleep(REPORT_SETTLE.max(REPORT_INTERVAL.saturating_sub(looked.elapsed()))).await {
                    break;
                }
            }
            _ = tokio::time::sleep_until(next_heartbeat.min(looked + IDLE_REPORT_INTERVAL)) => {}
        }
    }
    publisher.close().await;
}

/// This site's summary, as heartbeats and registration carry it.
pub async fn heartbeat<C: GenericClient>(
    state: &AppState,
    client: &C,
) -> Result<SlaveHeartbeat, tokio_postgres::Error> {
    let summary = licensing::summary(client).await?;
    let license =
        summary.expires_on.map(|expires_on| LicenseUsage { seats: summary.seats, used: summary.used, expires_on });
    Ok(SlaveHeartbeat {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        endpoints: summary.used + summary.unlicensed,
        license,
        replication: crate::replication::replicator::progress(client, &state.rows_behind).await?,
        links: None,
    })
}

async fn send_heartbeat(state: &AppState, publisher: &Publisher) -> anyhow::Result<()> {
    let Some(link) = state.keyring.link() else { return Ok(()) };
    let client = state.pool.get().await?;
    let mut summary = heartbeat(state, &client).await?;
    summary.links = super::broker_links::report(state).await.map(|r| r.states());
    let report = SlaveReport::Heartbeat(summary);
    let command = report_command(state, &link, &report);
    publisher
        .publish(Outgoing::envelope(command.exchange, command.routing_key, &command.envelope, Some(&link.slave_key)))
        .await?;
    Ok(())
}

/// A report to the master, signed with the slave key, ready for the outbox.
pub fn report_command(state: &AppState, link: &MasterLink, report: &SlaveReport) -> outbox::Command {
    outbox::Command {
        exchange: state.site.topology.status_exchange(),
        routing_key: Topology::status_key(&state.site.instance, report.kind()),
        envelope: report.to_envelope(&state.site.instance),
        signer: Some(outbox::Signer::Shared(link.slave_key.clone())),
    }
}

/// Queues a receipt for every master policy and task whose state differs
/// from what was last reported, and records it as reported.
async fn report_progress(state: &AppState) -> anyhow::Result<usize> {
    let Some(link) = state.keyring.link() else { return Ok(0) };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let mut policies = Vec::new();
    for (id, reported, receipt) in policy_receipts(&tx).await? {
        if reported.as_ref() != Some(&serde_json::to_value(&receipt)?) {
            policies.push((id, receipt));
        }
    }
    let mut tasks = Vec::new();
    for (id, reported, receipt) in task_receipts(&tx, None).await? {
        if reported.as_ref() != Some(&serde_json::to_value(&receipt)?) {
            tasks.push((id, receipt));
        }
    }
    if policies.is_empty() && tasks.is_empty() {
        return Ok(0);
    }
    for (table, changed) in [("policies", &policies), ("tasks", &tasks)] {
        let ids: Vec<Uuid> = changed.iter().map(|(id, _)| *id).collect();
        let values: Vec<Value> =
            changed.iter().map(|(_, r)| serde_json::to_value(r).expect("receipts serialize")).collect();
        tx.execute(
            &format!("UPDATE {table} t SET reported = v.r FROM unnest($1::uuid[], $2::jsonb[]) AS v(id, r) WHERE t.id = v.id"),
            &[&ids, &values],
        )
        .await?;
    }
    let commands: Vec<_> = policies
        .into_iter()
        .chain(tasks)
        .map(|(_, r)| report_command(state, &link, &SlaveReport::Receipt(r)))
        .collect();
    outbox::enqueue(&tx, &commands).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    Ok(commands.len())
}

/// Every master policy: (id, last reported, current receipt). The
/// endpoints are counted per policy through their index: a join of every
/// endpoint with the policies read all computers of the slave on every look
/// (2 ms for 10,000 computers), whatever the policies covered.
async fn policy_receipts<C: GenericClient>(
    client: &C,
) -> Result<Vec<(Uuid, Option<Value>, Receipt)>, tokio_postgres::Error> {
    let rows = client
        .query_cached(
            "SELECT p.id, p.version, p.failure, p.reported, c.assigned, c.applied
               FROM policies p
               CROSS JOIN LATERAL (
                   SELECT count(*) AS assigned,
                          count(*) FILTER (WHERE e.applied_policy_id = e.policy_id AND e.applied_policy_version = e.policy_version) AS applied
                     FROM endpoints e WHERE e.policy_id = p.id) c
              WHERE p.owner = 'master'",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let failure: Option<String> = r.get(2);
            let progress = PolicyProgress { assigned: r.get(4), applied: r.get(5) };
            let state = match &failure {
                Some(_) => ReceiptState::Failed,
                None if progress.applied == progress.assigned => ReceiptState::Applied,
                None => ReceiptState::Delivered,
            };
            let receipt = Receipt {
                object: ReceiptObject::Policy,
                id: r.get(0),
                version: r.get(1),
                state,
                reason: failure,
                policy: Some(progress),
                task: None,
            };
            (r.get(0), r.get(3), receipt)
        })
        .collect())
}

/// Master tasks not yet reported final (or the `only` ones, whatever their
/// state): (id, last reported, current receipt).
pub async fn task_receipts<C: GenericClient>(
    client: &C,
    only: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, Option<Value>, Receipt)>, tokio_postgres::Error> {
    let rows = client
        .query_cached(
            "SELECT t.id, t.failure, t.cancelled_at IS NOT NULL, t.reported, count(r.*),
                    count(r.*) FILTER (WHERE r.state = 'pending'), count(r.*) FILTER (WHERE r.state = 'running'),
                    count(r.*) FILTER (WHERE r.state = 'succeeded'), count(r.*) FILTER (WHERE r.state = 'failed'),
                    count(r.*) FILTER (WHERE r.state = 'cancelled')
               FROM tasks t LEFT JOIN task_results r ON r.task_id = t.id
              WHERE t.owner = 'master'
                AND CASE WHEN $1::uuid[] IS NULL
                         THEN t.reported IS NULL OR t.reported ->> 'state' = 'delivered'
                         ELSE t.id = ANY($1) END
              GROUP BY t.id",
            &[&only],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let failure: Option<String> = r.get(1);
            let progress = TaskProgress {
                total: r.get(4),
                pending: r.get(5),
                running: r.get(6),
                succeeded: r.get(7),
                failed: r.get(8),
                cancelled: r.get(9),
            };
            let state = match (&failure, r.get::<_, bool>(2)) {
                (Some(_), _) => ReceiptState::Failed,
                (None, true) => ReceiptState::Cancelled,
                (None, false) if progress.finished() == progress.total => ReceiptState::Applied,
                (None, false) => ReceiptState::Delivered,
            };
            let receipt = Receipt {
                object: ReceiptObject::Task,
                id: r.get(0),
                version: 1,
                state,
                reason: failure,
                policy: None,
                task: Some(progress),
            };
            (r.get(0), r.get(3), receipt)
        })
        .collect())
}
