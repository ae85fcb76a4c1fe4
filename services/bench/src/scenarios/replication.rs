//! Replication throughput and backlog drain.
//!
//! Throughput queues new computers on every slave while the master is
//! stopped, then starts the master, asks every slave to replicate now (as
//! an operator would; most slaves replicate hourly) and times it from the
//! master's start until every slave has had its changes acknowledged (the
//! master applied them, committed, and the answer reached the slave). The
//! backlog drain queues an hour's worth of detections on every slave but
//! the few that take live traffic meanwhile, on a running master, and
//! times it from *replicate now*. The master's peak memory is read at the
//! end of each.

use std::{sync::Arc, time::Duration};

use anyhow::{ensure, Context};
use rampart_shared::replication::Watermark;
use serde::Serialize;
use tokio::time::Instant;

use super::traffic::{self, Traffic};
use crate::{
    fleet::Fleet,
    master::{Master, MasterConfig},
    stats::{per_second, Percentiles},
};

/// Longest the master may take to catch up before the run fails.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, Serialize)]
pub struct Drain {
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// Peak resident memory of the master process, bytes.
    pub master_peak_rss: u64,
    /// Replication batches the master applied and refused (duplicates
    /// resent while it was down) in this drain.
    pub batches_applied: i64,
    pub batches_refused: i64,
}

/// Live traffic during a drain.
#[derive(Clone, Debug, Serialize)]
pub struct Live {
    pub updates: u64,
    pub updates_per_s: f64,
    pub lag: Option<Percentiles>,
}

/// `computers` new computers on every slave, replicated from a standing start.
pub async fn throughput(
    fleet: &Fleet,
    master: Master,
    config: &MasterConfig,
    master_db: &tokio_postgres::Client,
    computers: u64,
) -> anyhow::Result<(Master, Drain)> {
    master.stop().await?;
    tracing::info!(
        slaves = fleet.slaves.len(),
        computers,
        "Enrolling computers in every slave while the master is stopped."
    );
    let heads = fleet.load_endpoints(computers).await?;
    let (master, drain) = drain(fleet, config, master_db, heads, fleet.slaves.len() as u64 * computers).await?;
    let copied: i64 = master_db
        .query_one("SELECT count(*) FROM replica_rows WHERE table_name = 'endpoints' AND row IS NOT NULL", &[])
        .await?
        .get(0);
    ensure!(copied as u64 == drain.rows, "the master holds {copied} computers, not the {} the slaves have", drain.rows);
    Ok((master, drain))
}

/// `detections` new rows (an hour of changes, a week offline for a slave
/// that replicates hourly) on every slave but the first `live.slaves`,
/// which stay caught up and take `live` traffic from the drain's start
/// until the others have drained: their lag is what the master's fresh
/// view of the sites that keep up costs during a backlog.
///
/// The master is restarted first (its peak memory is then the drain's) and
/// runs while the backlog is written: the backlogged slaves replicate
/// hourly, so their rows wait until *replicate now* starts the drain, as a
/// site back from a week offline sends its backlog to a running master. A
/// master's own restart is a recovery (docs/reliability.md), not part of
/// this figure; until change 39 the drain began with one.
pub async fn backlog(
    fleet: &Fleet,
    master: Master,
    config: &MasterConfig,
    master_db: Arc<tokio_postgres::Client>,
    detections: u64,
    computers: u64,
    live: &Traffic,
) -> anyhow::Result<(Master, Drain, Live)> {
    master.stop().await?;
    let master = Master::start(config).await.context("restarting the master")?;
    caught_up(fleet, 0..live.slaves).await.context("the live slaves after the master's restart")?;
    let backlogged = fleet.slaves.len() - live.slaves;
    tracing::info!(
        backlogged,
        detections,
        live_slaves = live.slaves,
        "Queueing an hour of detections in the backlogged slaves (they replicate hourly)."
    );
    let before = count_detections(&master_db).await?;
    let acked_before = acked(fleet, live.slaves..fleet.slaves.len()).await?;
    let heads = fleet.load_detections(live.slaves, detections, computers).await?;
    let rows = backlogged as u64 * detections;
    ensure!(
        acked(fleet, live.slaves..fleet.slaves.len()).await? == acked_before,
        "a backlogged slave replicated before the drain began: its ReplicationInterval is shorter than the run"
    );
    let batches_before = batch_counts(&master_db).await?;
    let started = Instant::now();
    master.call_ok(reqwest::Method::POST, "/api/replication/now", Some(serde_json::json!({}))).await?;
    tracing::info!(rows, "The drain started (replicate now).");
    let running = traffic::start(fleet, live, master_db.clone());
    let drain = drained(fleet, &master, &master_db, &heads, rows, started, batches_before).await?;
    let outcome = running.finish(Duration::from_secs(120)).await?;
    let copied = count_detections(&master_db).await? - before;
    ensure!(
        copied as u64 == drain.rows,
        "the master gained {copied} detections, not the {} the slaves recorded",
        drain.rows
    );
    let live = Live {
        updates: outcome.updates,
        updates_per_s: per_second(outcome.updates, outcome.elapsed),
        lag: Percentiles::of(&outcome.lags),
    };
    Ok((master, drain, live))
}

/// Waits until the master has acknowledged everything the `slaves` have
/// written so far.
async fn caught_up(fleet: &Fleet, slaves: std::ops::Range<usize>) -> anyhow::Result<()> {
    let mut heads = Vec::new();
    for i in slaves {
        heads.push((i, fleet.written_head(i).await?));
    }
    fleet.wait_acked(&heads, Duration::from_secs(120)).await.map(|_| ())
}

/// Where the master has acknowledged each of the `slaves`' streams to.
async fn acked(fleet: &Fleet, slaves: std::ops::Range<usize>) -> anyhow::Result<Vec<Watermark>> {
    let mut positions = Vec::new();
    for i in slaves {
        positions.push(fleet.acked(i).await?);
    }
    Ok(positions)
}

async fn count_detections(master_db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(master_db
        .query_one("SELECT count(*) FROM replica_rows WHERE table_name = 'detections' AND row IS NOT NULL", &[])
        .await?
        .get(0))
}

/// Starts the master and waits for every slave to reach its head.
async fn drain(
    fleet: &Fleet,
    config: &MasterConfig,
    master_db: &tokio_postgres::Client,
    heads: Vec<(usize, Watermark)>,
    rows: u64,
) -> anyhow::Result<(Master, Drain)> {
    let (master, started, batches_before) = restart(config, master_db).await?;
    let drain = drained(fleet, &master, master_db, &heads, rows, started, batches_before).await?;
    Ok((master, drain))
}

/// Starts the master and asks every slave to replicate now; when it
/// started, and the batches applied and refused until then.
async fn restart(
    config: &MasterConfig,
    master_db: &tokio_postgres::Client,
) -> anyhow::Result<(Master, Instant, (i64, i64))> {
    let before = batch_counts(master_db).await?;
    let started = Instant::now();
    let master = Master::start(config).await.context("restarting the master")?;
    master.call_ok(reqwest::Method::POST, "/api/replication/now", Some(serde_json::json!({}))).await?;
    Ok((master, started, before))
}

/// Waits until the master has acknowledged each slave's `heads`.
async fn drained(
    fleet: &Fleet,
    master: &Master,
    master_db: &tokio_postgres::Client,
    heads: &[(usize, Watermark)],
    rows: u64,
    started: Instant,
    (applied_before, refused_before): (i64, i64),
) -> anyhow::Result<Drain> {
    let reached = fleet.wait_acked(heads, CATCH_UP_TIMEOUT).await?;
    let last = reached.into_iter().max().unwrap_or(started);
    let elapsed = last - started;
    let master_peak_rss = master.peak_rss()?;
    let (applied, refused) = batch_counts(master_db).await?;
    let drain = Drain {
        rows,
        seconds: elapsed.as_secs_f64(),
        rows_per_s: per_second(rows, elapsed),
        master_peak_rss,
        batches_applied: applied - applied_before,
        batches_refused: refused - refused_before,
    };
    tracing::info!(?drain, "The master caught up.");
    Ok(drain)
}

async fn batch_counts(master_db: &tokio_postgres::Client) -> anyhow::Result<(i64, i64)> {
    let row = master_db
        .query_one(
            "SELECT coalesce(sum(repl_batches), 0)::bigint, coalesce(sum(repl_refused), 0)::bigint FROM slaves",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
