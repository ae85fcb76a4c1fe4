//! Master side: the aggregated events for the report service.
//!
//! A master with an `<EventKey>` queues the [`SlaveSummary`] of a slave
//! after its replication batches (through [`due`](super::due)): the parts
//! the batches touched, read back from the copy. It also queues one when a
//! slave joins or leaves, and a [`HealthRoster`] of every slave every
//! [`ROSTER_INTERVAL`]. The outbox publishes them on `<ns>.events`; the master
//! declares `<ns>.report.events` at start, so events wait for a report
//! service that is down or not started yet.

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::GenericClient;
use rampart_shared::{
    replication::{ReplicatedTable, ReplicationBatch},
    report::events::{kind, HealthRoster, SlaveHealth, SlaveSummary},
    signing::SigningKey,
    topology::Topology,
    Envelope, Shutdown,
};
use uuid::Uuid;

use super::summary::{self, Scope};
use crate::{
    hierarchy::OFFLINE_AFTER,
    operators::{activity, Actor},
    outbox,
    state::AppState,
};

/// How often the master publishes the roster (slaves go offline without a batch).
pub const ROSTER_INTERVAL: Duration = Duration::from_secs(30);

/// Which parts of a slave's summary changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Touched {
    /// Endpoints, detections or license.
    pub site: bool,
    /// Tasks with new results; `None` means all of them (a complete list).
    pub tasks: Option<Vec<Uuid>>,
}

impl Touched {
    /// Everything: after a new epoch replaced the copy, on a purge, on a resend.
    pub fn everything() -> Self {
        Self { site: true, tasks: None }
    }

    /// Only the slave's health (registration, removal, a refused batch).
    pub fn health() -> Self {
        Self { site: false, tasks: Some(vec![]) }
    }

    /// What `batch` changed.
    pub fn of_batch(batch: &ReplicationBatch) -> Self {
        let mut tasks: Vec<Uuid> = Vec::new();
        let mut site = false;
        for row in &batch.rows {
            match row.table {
                ReplicatedTable::Endpoints | ReplicatedTable::Detections | ReplicatedTable::License => site = true,
                ReplicatedTable::TaskResults => {
                    if let Some(id) = row.key.get("task_id").and_then(|v| v.as_str()).and_then(|s| s.parse().ok()) {
                        tasks.push(id);
                    }
                }
                _ => {}
            }
        }
        tasks.sort_unstable();
        tasks.dedup();
        Self { site, tasks: Some(tasks) }
    }
}

/// The key events are signed with, if this master publishes events.
fn signer(state: &AppState) -> Option<SigningKey> {
    state.settings.reports.event_key.as_ref().map(|k| SigningKey::from_secret(k.expose()))
}

/// Whether this master publishes events for a report service.
pub fn enabled(state: &AppState) -> bool {
    state.settings.reports.event_key.is_some()
}

fn event(state: &AppState, signer: SigningKey, kind: &str, body: &impl serde::Serialize) -> outbox::Command {
    outbox::Command {
        exchange: state.site.topology.events_exchange(),
        routing_key: Topology::event_key(kind),
        envelope: Envelope::new(kind, &state.site.instance, 0, body),
        signer: Some(outbox::Signer::Shared(signer)),
    }
}

async fn next_seq<C: GenericClient>(tx: &C) -> Result<i64, tokio_postgres::Error> {
    Ok(tx.query_one("SELECT nextval('report_seq')", &[]).await?.get(0))
}

/// Advisory lock class of one slave's summaries (the slave's hash is the object).
const SUMMARY_LOCK: i32 = 0x5253_554d;

/// Queues `slave`'s summary in the caller's transaction (nothing without an event key).
///
/// Summaries of one slave are made one at a time, each reading after the
/// last committed and numbered after it reads, so a higher `seq` never
/// carries older numbers (a removal racing the summarizer, say).
pub async fn queue_summary<C: GenericClient>(
    tx: &C,
    state: &AppState,
    slave: &str,
    touched: Touched,
) -> Result<(), tokio_postgres::Error> {
    let Some(signer) = signer(state) else { return Ok(()) };
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&SUMMARY_LOCK, &slave]).await?;
    let Some(health) = health(tx, Some(slave)).await?.pop() else { return Ok(()) };
    let site = if touched.site { Some(summary::site(tx, Scope::Slave(slave)).await?) } else { None };
    let tasks = match &touched.tasks {
        Some(ids) if ids.is_empty() => vec![],
        Some(ids) => summary::tasks(tx, Scope::Slave(slave), Some(ids)).await?,
        None => summary::tasks(tx, Scope::Slave(slave), None).await?,
    };
    let body = SlaveSummary {
        slave: slave.to_owned(),
        seq: next_seq(tx).await?,
        as_of: Utc::now(),
        site,
        tasks,
        tasks_complete: touched.tasks.is_none(),
        health,
    };
    tracing::debug!(
        slave_id = slave,
        seq = body.seq,
        site = touched.site,
        tasks = body.tasks.len(),
        "Queued a slave summary for the report service."
    );
    outbox::enqueue(tx, &[event(state, signer, kind::SLAVE_SUMMARY, &body)]).await
}

/// Queues the roster of every slave in the caller's transaction.
pub async fn queue_roster<C: GenericClient>(tx: &C, state: &AppState) -> Result<(), tokio_postgres::Error> {
    let Some(signer) = signer(state) else { return Ok(()) };
    let body = HealthRoster { seq: next_seq(tx).await?, as_of: Utc::now(), slaves: health(tx, None).await? };
    outbox::enqueue(tx, &[event(state, signer, kind::HEALTH_ROSTER, &body)]).await
}

/// Queues everything again: the roster and every slave's full summary, so
/// a report service starting from an empty database ends in the same state.
/// Returns how many slaves were sent.
pub async fn resend(state: &AppState, actor: &Actor) -> anyhow::Result<usize> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    queue_roster(&tx, state).await?;
    let slaves: Vec<String> =
        tx.query("SELECT id FROM slaves ORDER BY id", &[]).await?.iter().map(|r| r.get(0)).collect();
    for slave in &slaves {
        queue_summary(&tx, state, slave, Touched::everything()).await?;
    }
    let after = serde_json::json!({"slaves": slaves.len()});
    activity::record(&tx, actor, "reports.resend", "report-service", None, Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(slaves = slaves.len(), "Queued a full resend for the report service.");
    Ok(slaves.len())
}

/// Publishes the roster every [`ROSTER_INTERVAL`] until shutdown.
pub async fn run_roster(state: std::sync::Arc<AppState>, shutdown: Shutdown) {
    loop {
        let result = async {
            let mut client = state.pool.get().await?;
            let tx = client.transaction().await?;
            queue_roster(&tx, &state).await?;
            tx.commit().await?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => state.wakes.outbox_relay.wake(),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "Could not queue the slave roster for the report service; retrying later.")
            }
        }
        if !shutdown.sleep(ROSTER_INTERVAL).await {
            return;
        }
    }
}

/// Health of one slave, or of every slave (`None`).
pub async fn health<C: GenericClient>(
    client: &C,
    slave: Option<&str>,
) -> Result<Vec<SlaveHealth>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, CASE WHEN state = 'active' AND last_seen > now() - make_interval(secs => $1::double precision) THEN 'online'
                             WHEN state = 'active' THEN 'offline' ELSE state END,
                    version, last_seen, replicated_at, synced_as_of, rows_behind, repl_refused
               FROM slaves WHERE $2::text IS NULL OR id = $2 ORDER BY id",
            &[&OFFLINE_AFTER.as_secs_f64(), &slave],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SlaveHealth {
            slave: r.get(0),
            state: r.get(1),
            version: r.get(2),
            last_seen: r.get(3),
            replicated_at: r.get(4),
            synced_as_of: r.get(5),
            rows_behind: r.get(6),
            batches_refused: r.get(7),
        })
        .collect())
}
